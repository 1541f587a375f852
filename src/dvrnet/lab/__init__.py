"""The lab: the article's figure on one machine (see world.py), its traffic checks (checks/), its
description as data (info.py) and its teardown (down.py)."""
