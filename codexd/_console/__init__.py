"""The web console: static pages served on the API's own port, and how a browser logs in.

``_auth`` derives one-use login tickets and session cookies from the API token, ``_http`` reads
a connection's request head and serves the console's few HTTP routes, ``_login`` builds the URL
that ``codexd console`` prints. The WebSocket API itself stays in :mod:`codexd._api_server`.
"""
