"""Multi-server federation test harness: a test CA, real Synapse and Trellis processes on
loopback addresses, and a small synchronous Matrix client. See complement-tests/README.md."""

from .ca import Cert, TestCA
from .client import Client, MatrixError, register
from .scenario import Pair, Room, bodies, joined_room, users
from .process import HomeServer, ServerStartError, free_port
from .synapse import SynapseServer
from .trellis import FederationUnavailable, TrellisServer, trellis_binary

__all__ = [
    "Cert", "Client", "FederationUnavailable", "HomeServer", "MatrixError", "Pair", "Room",
    "ServerStartError", "SynapseServer", "TestCA", "TrellisServer", "bodies", "free_port",
    "joined_room", "register", "trellis_binary", "users",
]
