"""UconDB boundary: the HTTP client the pipeline uses and a local UconDB-compatible server.

``client`` talks to a real UconDB (3.9.7 API); ``server``/``storage``/``digest`` implement the
local server for development, the demo and tests; ``testing`` starts one on a free loopback port.
"""

from archiver_resources.ucondb.client import Blob, UconDBClient, VersionMeta

__all__ = ["Blob", "UconDBClient", "VersionMeta"]
