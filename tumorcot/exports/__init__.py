"""Publishing a dataset: stats, dataset card, Croissant metadata, chat-format exports
(LLaVA, ShareGPT/LLaMA-Factory), ROI crops and a PyTorch dataset.

Nothing here imports torch at module level; ``torch_dataset`` imports it when used.
"""
