"""The crossbar array and its periphery: pulsed outer-product update and analog MVM with IO."""
