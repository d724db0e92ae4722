"""The trainer components MobileLLM-R1 runs configure beyond torchtitan's: each wraps or picks a
torchtitan component from settings that read the same in a TOML table and on the command line."""
