"""Chat SFT for MobileLLM-R1: the chat format, chat data sources, the packing loader, stage configs."""
