"""What every cloud adapter shares and no single cloud owns: the endpoint allow-list today."""
