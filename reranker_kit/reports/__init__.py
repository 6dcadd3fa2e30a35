"""What runs leave for people to read: charts and model cards."""
