"""The HTTP API for the console backend, the verification page and the codec server.

`create_app` is re-exported here: the CLI, the dev stack and the tests build the app by it.
"""

from service.api.main import create_app

__all__ = ["create_app"]
