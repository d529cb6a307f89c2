"""Two-stage RAG chatbot with LangChain: Chroma (100 candidates) -> xrerank (best 10) -> answer.

    python examples/chatbot_langchain.py --question "Does autophagy decline in aged organisms?"
    python examples/chatbot_langchain.py            # interactive
    python examples/chatbot_langchain.py --help

The pipeline itself is in ``xrerank_demo/langchain_app.py`` (installed with
``pip install "xrerank[demo]"``); copy that file to start your own.
"""

import sys

from xrerank_demo.langchain_app import main

if __name__ == "__main__":
    sys.exit(main())
