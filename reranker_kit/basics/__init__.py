"""The ground floor: errors, text and score normalisation, atomic files, interrupts, process rank."""
