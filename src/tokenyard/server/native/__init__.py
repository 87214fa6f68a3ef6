"""The gateway's own HTTP/1.1 server for the hot paths (decision 0015)."""
