"""Pure execution: order state machine, brackets, paper fill model, accounting, and the TradingEngine.

How the shells drive it (no I/O here; every input carries its event time):

    engine = TradingEngine(EngineParams(...))        # or restore(): see below
    events = engine.on_bar(bar)                       # also on_trade, on_quote, on_feed_health
    events += engine.on_signal(signal, ts)
    events += engine.on_venue_report(report)          # real venues; paper reports loop inside
    events += engine.pause(ts) / resume(ts) / halt(ts) / flatten(symbol, ts) / kill(ts)
    for e in events:
        ledger.append(events.to_dict(e))              # append BEFORE sending any OrderIntent

Crash restart: `engine.restore(snapshot_dict)` then `engine.apply(events.from_dict(d))` for every
ledger event after the snapshot; `engine.snapshot()` is plain JSON-able data. With a real venue,
`OrderIntent` and `CancelRequested` events are what the router sends (client order ids are
deterministic: `orders.client_order_id(signal_id, role)`), and `orders_awaiting_ack()` lists
what a restart must look up at the venue before sending again.
"""
