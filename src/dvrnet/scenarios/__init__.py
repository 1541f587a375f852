"""Built-in scenarios: the article's figure as data, and its construction through `ops`."""
