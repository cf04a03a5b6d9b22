"""Local fakes of the networks, speaking each one's real wire protocol.

Used by the tests (real HTTP on loopback through tweepy and httpx), by
``socialbot demo``, and by ``socialbot sandbox`` for trying things by hand.
"""

from socialbot.sandbox.server import Fault, NetworkSandbox, Request, Response, SandboxServer

__all__ = ["Fault", "NetworkSandbox", "Request", "Response", "SandboxServer"]
