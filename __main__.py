from dr.stack.program import run; run()  # noqa: E702 - the program lives in dr/stack/program.py
