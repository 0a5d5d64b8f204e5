"""The runtime bridge: one long-lived runtime behind a numbered, replayable stream.

``protocol`` (sans-IO framing), ``server`` (the ``argus bridge`` process that owns the
runtime), ``client`` (the gateway's ``Runtime`` over a bridge connection).
"""
