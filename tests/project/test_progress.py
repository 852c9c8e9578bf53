"""Reading a stage's tqdm bars from its streamed output."""

from io import StringIO

from tqdm import tqdm

from components.project.progress import ProgressReader


def test_bars_are_read_as_they_stream_even_when_a_read_splits_them():
    out = StringIO()
    with tqdm(total=4, desc="train ebft", unit="step", file=out, mininterval=0) as bar:
        for _ in range(4):
            bar.update(1)
            bar.set_postfix(reward="0.69")
    with tqdm(total=3, desc="packing train", file=out, mininterval=0) as bar:
        bar.update(3)
    text = "plain log line\n" + out.getvalue()
    reader, seen = ProgressReader(), []
    for lo in range(0, len(text), 7):  # the pipe hands over arbitrary pieces
        seen += reader.feed(text[lo : lo + 7])
    train = [b for b in seen if b.desc == "train ebft"]
    assert train[0].percent == 0 and train[-1].percent == 100
    assert (train[-1].n, train[-1].total) == ("4", "4") and train[-1].sentence().startswith("train ebft: 100% (4/4)")
    assert [b.desc for b in seen][-1] == "packing train" and seen[-1].percent == 100
    assert ProgressReader().feed("loss: 50% of nothing\n") == []
