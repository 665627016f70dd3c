"""Light-field sources: sub-aperture views refocused into a focal stack."""
