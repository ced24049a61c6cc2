"""What both transports share over HTTP: the middleware, the rate limiter, the HTTP-only errors,
the JSON body parser and the one content-type helper. It imports neither transport: what it
answers itself (413, 429, the masked 500) it renders with the functions `create_app` hands it."""
