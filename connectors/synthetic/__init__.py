"""The synthetic trade feed (many symbols, fault injection) and open-loop pacing."""
