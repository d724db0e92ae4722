import pytest


@pytest.fixture(scope="session")
def llama3_tokenizer():
    from mlr1_titan.tokenizer import Llama3Tokenizer

    return Llama3Tokenizer()


@pytest.fixture(scope="session")
def chat_template_file(tmp_path_factory):
    from hf_testkit import TEMPLATE

    path = tmp_path_factory.mktemp("template") / "chat_template.jinja"
    path.write_text(TEMPLATE)
    return path
