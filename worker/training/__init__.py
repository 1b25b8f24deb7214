"""Zero-code image-classification fine-tuning on transformers' Trainer."""
