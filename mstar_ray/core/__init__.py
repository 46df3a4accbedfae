"""What every part shares: the records that flow between phases, sampling settings and the response format."""
