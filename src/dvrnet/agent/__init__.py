"""The node agent: follow the server's view of this host, plan, reconcile against the kernel,
verify. Level-triggered: every pass compares with what the kernel really holds."""
