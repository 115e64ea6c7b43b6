"""Dialogs and full screens: launch, generate, LR-ramped resume, compare, confirmations."""
