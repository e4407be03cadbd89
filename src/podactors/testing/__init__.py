"""Public helpers for testing code that uses podactors.

:class:`~podactors.testing.standin.StandinServer` is a stand-in for the Anthropic Messages
API on loopback: point a pod's ``[model] base_url`` at it and the pod runs for real, over
HTTP, on scripted replies. :class:`~podactors.testing.standin.LoopbackServer` is the HTTP
serving loop underneath, for stand-ins of other wire formats.
"""

from podactors.testing.standin import HttpRequest, HttpResponse, LoopbackServer, StandinServer

__all__ = ["HttpRequest", "HttpResponse", "LoopbackServer", "StandinServer"]
