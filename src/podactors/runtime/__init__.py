"""The pod runtime: pods, their active sessions, their events, and the supervisor."""
