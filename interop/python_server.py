"""A tiny stateful MCP server on the official Python SDK, for interop tests.

`increment` counts per MCP session, so a test can tell whether two calls
reached the same session. Run with no arguments for stdio, or with
`http PORT` for streamable HTTP on 127.0.0.1.
"""

import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("py-counter")
counters: dict[str, int] = {}


def session_key(ctx: Context) -> str:
    # Over HTTP the session is named by its header; over stdio the process
    # is the session.
    headers = ctx.headers or {}
    return headers.get("mcp-session-id", "stdio")


@server.tool()
async def increment(ctx: Context) -> str:
    """Add one to this session's counter and return it."""
    key = session_key(ctx)
    counters[key] = counters.get(key, 0) + 1
    return str(counters[key])


@server.tool()
async def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
