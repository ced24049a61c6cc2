"""The webhook delivery engine: claims due deliveries, signs, sends, records (docs/webhooks.md).

Started by `serve` (WEBHOOKS_DELIVERY=inline) or `python -m app deliver`; never called by a
request, but for the test ping, which a request attempts itself.
"""
