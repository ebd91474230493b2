"""Two-step ML reconstruction: LSTM peak classifier and CNN cluster counter."""
