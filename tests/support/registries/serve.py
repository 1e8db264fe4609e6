"""The test registries' HTTP servers, run inside the tests' network namespace.

    serve.py static HOST PORT DIR   files under DIR (the Cargo sparse index, the GOPROXY tree)
    serve.py pypi   HOST PORT DIR   pypiserver's WSGI app over the packages in DIR

Neither calls socket.getfqdn() when it binds (http.server and wsgiref do): the namespace has
no resolver, and the lookup would stall start-up until the resolver times out.
"""

import functools
import socketserver
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

mode, host, port, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


class StaticServer(ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = host, port


class PypiServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = host, port
        self.setup_environ()


if mode == "static":
    server = StaticServer((host, port), functools.partial(SimpleHTTPRequestHandler, directory=root))
elif mode == "pypi":
    import pypiserver

    # No fallback: an unknown name is a 404 here, never a redirect to pypi.org.
    app = pypiserver.app(roots=[root], disable_fallback=True, authenticate=[], password_file=".")
    server = PypiServer((host, port), WSGIRequestHandler)
    server.set_app(app)
else:
    sys.exit(f"unknown mode {mode}")
print(f"serving {mode} on {host}:{port}", flush=True)
server.serve_forever()
