"""Money: prices, cost arithmetic and (next) the ledger. Money is integer nano-units."""
