"""Extra training queries from the answers and from the corpus's own sentences."""

from reranker_kit.data.augmentation import MIN_SENTENCE_WORDS, answers_as_queries, document_sentences, passages_as_queries
from reranker_kit.data.loading import Query, load_corpus

from conftest import ROOT


def make_query(qid: str, answer: str) -> Query:
    return Query(qid=qid, text="clb tuyển khi nào ạ", relevant_ids=(3, 7), answer=answer, difficulty=2,
                 source="train.xlsx", row=2)


def test_answers_become_queries_for_the_same_documents():
    queries = [make_query("q1", "Tháng 9 hằng năm."), make_query("q2", "")]
    (extra,) = answers_as_queries(queries)
    assert extra.qid == "q1:answer" and extra.text == "Tháng 9 hằng năm." and extra.relevant_ids == (3, 7)


def test_sentences_split_at_punctuation_and_line_breaks_but_not_inside_numbers():
    text = ("Quỹ CLB là 100.000 đồng mỗi học kỳ cho mọi thành viên. Lưu ý: nộp trong bốn tuần đầu học kỳ; "
            "bạn khó khăn có thể xin miễn giảm với thủ quỹ!\nBuổi sinh hoạt chung diễn ra vào tối thứ sáu hằng tuần")
    assert document_sentences(text) == [
        "Quỹ CLB là 100.000 đồng mỗi học kỳ cho mọi thành viên.",
        "nộp trong bốn tuần đầu học kỳ;",
        "bạn khó khăn có thể xin miễn giảm với thủ quỹ!",
        "Buổi sinh hoạt chung diễn ra vào tối thứ sáu hằng tuần",
    ]
    assert all(len(sentence.split()) >= MIN_SENTENCE_WORDS for sentence in document_sentences(text))


def test_passage_queries_take_the_first_sentences_of_each_document():
    corpus = {
        1: "Câu thứ nhất của tài liệu một nói về tuyển thành viên. Câu thứ hai của tài liệu một nói về lịch học. "
           "Câu thứ ba của tài liệu một nói về quỹ.",
        2: "Ngắn thôi. Tài liệu hai chỉ có một câu đủ dài để hỏi.",
    }
    queries = passages_as_queries(corpus, per_document=2)
    assert [(query.text.split(".")[0], query.relevant_ids) for query in queries] == [
        ("Câu thứ nhất của tài liệu một nói về tuyển thành viên", (1,)),
        ("Câu thứ hai của tài liệu một nói về lịch học", (1,)),
        ("Tài liệu hai chỉ có một câu đủ dài để hỏi", (2,)),
    ]
    assert len({query.qid for query in queries}) == 3 and all(query.source == "corpus" for query in queries)
    assert passages_as_queries(corpus, per_document=0) == []


def test_a_sentence_shared_by_documents_is_asked_once_and_relevant_to_all():
    shared = "Mọi thắc mắc xin gửi về trang của câu lạc bộ."
    corpus = {4: f"Lịch sinh hoạt là tối thứ sáu hằng tuần tại phòng học. {shared}",
              9: f"Học phí training là miễn phí cho mọi sinh viên năm nhất. {shared}"}
    queries = passages_as_queries(corpus, per_document=5)
    asked_shared = [query for query in queries if query.text == shared]
    assert len(asked_shared) == 1 and asked_shared[0].relevant_ids == (4, 9)
    assert len(queries) == 3


def test_the_sample_corpus_gives_queries_for_nearly_every_document():
    corpus = load_corpus(ROOT / "CLB_PROPTIT.csv")
    queries = passages_as_queries(corpus, per_document=4)
    documents = {doc_id for query in queries for doc_id in query.relevant_ids}
    assert len(documents) >= 0.95 * len(corpus)
    assert all(query.text in corpus[query.row] for query in queries)
