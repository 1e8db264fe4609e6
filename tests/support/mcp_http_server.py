#!/usr/bin/env python3
"""A minimal MCP server over streamable HTTP for slipway's tests: POST /mcp with one
JSON-RPC message, answered as application/json (notifications get 202). Prints its URL on
stdout, then serves until killed. Tools as tests/support/mcp_server.py's lookup_ticket."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOOLS = [{
    "name": "lookup_ticket",
    "description": "Look up a ticket in the issue tracker by its id and return its title and status",
    "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    "annotations": {"readOnlyHint": True},
}]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", "application/json")
            self.send_header("Mcp-Session-Id", "test-session")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(405)

    def do_DELETE(self):
        self.reply(200, {})

    def do_POST(self):
        msg = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        method, mid = msg.get("method"), msg.get("id")
        if mid is None:
            return self.reply(202)
        if method == "initialize":
            version = msg.get("params", {}).get("protocolVersion", "2025-06-18")
            res = {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": {"name": "tracker-http", "version": "1.0.0"}}
        elif method == "tools/list":
            res = {"tools": TOOLS}
        elif method == "tools/call":
            args = msg.get("params", {}).get("arguments") or {}
            res = {"content": [{"type": "text", "text": f"{args.get('id')}: over HTTP (status: open)"}], "isError": False}
        else:
            return self.reply(200, {"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "not found"}})
        self.reply(200, {"jsonrpc": "2.0", "id": mid, "result": res})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"http://127.0.0.1:{server.server_address[1]}/mcp", flush=True)
server.serve_forever()
