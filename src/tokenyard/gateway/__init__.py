"""The request flow: plan → (reserve) → attempt → respond → settle."""
