"""The agent loop: a worker runs one turn of LLM calls and tool calls, watched by hooks."""
