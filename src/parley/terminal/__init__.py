"""parley.terminal: the chat in a terminal (interactive, or plain lines for scripts)."""
