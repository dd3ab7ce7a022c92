"""GeminiMediaNodeParser and GeminiMediaReader: pieces that fit the model's limits,
with source, modality and range in metadata and SOURCE/PREVIOUS/NEXT relationships."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path

import pytest
from li_helpers import BOOK_PAGES, NOTES
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import (
    Document,
    ImageDocument,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeRelationship,
    TextNode,
)

from gemb2 import InputError, Limits, UnsupportedMediaError
from gemb2.ingest.pieces import PIECES
from gemb2.inputs.probe import av_info
from gemb2.inputs.tokens import estimate_tokens
from gemb2.testing import samples
from llamaindex_gemb2 import GeminiMediaNodeParser, GeminiMediaReader, label_media

LONG_TEXT = "\n\n".join(
    f"Paragraph {i}. " + " ".join(f"word{i}_{j}" for j in range(300)) for i in range(40)
)


def _chain(nodes: list, doc_id: str) -> None:
    """Every node points at its document, and neighbours at each other."""
    for i, node in enumerate(nodes):
        assert node.relationships[NodeRelationship.SOURCE].node_id == doc_id
        assert node.ref_doc_id == doc_id
        if i > 0:
            assert node.relationships[NodeRelationship.PREVIOUS].node_id == nodes[i - 1].node_id
        else:
            assert NodeRelationship.PREVIOUS not in node.relationships
        if i < len(nodes) - 1:
            assert node.relationships[NodeRelationship.NEXT].node_id == nodes[i + 1].node_id
        else:
            assert NodeRelationship.NEXT not in node.relationships


def test_pdf_becomes_pieces_of_at_most_six_pages(corpus: Path) -> None:
    doc = Document(text="the book", metadata={"file_path": str(corpus / "book.pdf")})
    nodes = GeminiMediaNodeParser()([doc])
    assert [(n.metadata["page_start"], n.metadata["page_end"]) for n in nodes] == [
        (1, 6),
        (7, 12),
        (13, 14),
    ]
    for i, node in enumerate(nodes):
        assert isinstance(node, TextNode)
        assert node.metadata["modality"] == "pdf"
        assert node.metadata["mime_type"] == "application/pdf"
        assert node.metadata["source"] == str(corpus / "book.pdf")
        assert (node.metadata["piece"], node.metadata["pieces"]) == (i, 3)
        assert len(node.metadata["file_hash"]) == 64
        assert node.get_content() == f"[pdf] book.pdf pages {(1, 7, 13)[i]}-{(6, 12, 14)[i]}"
        # the piece's metadata stays out of what an embedding model would read
        assert node.get_content(metadata_mode=MetadataMode.EMBED).startswith("file_path: ")
        assert "file_hash" not in node.get_content(metadata_mode=MetadataMode.EMBED)
        assert "pages 1-6" in nodes[0].get_content(metadata_mode=MetadataMode.LLM)
    _chain(nodes, doc.doc_id)
    assert len(PIECES) == 3  # remembered for the embedding that follows


def test_three_minute_video_becomes_overlapping_segments(corpus: Path) -> None:
    doc = Document(text="the boat", metadata={"file_path": str(corpus / "boat.mp4")})
    nodes = GeminiMediaNodeParser()([doc])
    assert len(nodes) == 2
    spans = [(n.metadata["start_seconds"], n.metadata["end_seconds"]) for n in nodes]
    assert spans[0][0] == 0.0
    assert spans[-1][1] == pytest.approx(180.0, abs=0.6)
    for start, end in spans:
        assert end - start < 120
    assert spans[0][1] - spans[1][0] >= 2.0  # consecutive segments overlap
    for node in nodes:
        assert node.metadata["modality"] == "video"
        assert node.get_content().startswith("[video] boat.mp4 ")
    _chain(nodes, doc.doc_id)
    # the pieces really are under the limit
    durations = [
        av_info(m.media[0].data).duration
        for m in (PIECES.get((n.metadata["file_hash"], "start_seconds", *_span(n))) for n in nodes)
        if m is not None and m.media[0].data is not None
    ]
    assert len(durations) == 2 and all(d < 120 for d in durations)


def _span(node: TextNode) -> tuple[float, float]:
    return (
        round(float(node.metadata["start_seconds"]), 3),
        round(float(node.metadata["end_seconds"]), 3),
    )


def test_overlap_and_limits_are_settings(corpus: Path) -> None:
    parser = GeminiMediaNodeParser(
        overlap_seconds=5.0, limits=Limits(max_video_seconds=60.0, max_pdf_pages=4)
    )
    docs = [
        Document(text="v", metadata={"file_path": str(corpus / "boat.mp4")}),
        Document(text="b", metadata={"file_path": str(corpus / "book.pdf")}),
    ]
    nodes = parser(docs)
    video = [n for n in nodes if n.metadata["modality"] == "video"]
    pdf = [n for n in nodes if n.metadata["modality"] == "pdf"]
    assert len(video) >= 4
    assert all(n.metadata["end_seconds"] - n.metadata["start_seconds"] < 60 for n in video)
    assert video[0].metadata["end_seconds"] - video[1].metadata["start_seconds"] >= 5.0
    assert [n.metadata["page_end"] for n in pdf] == [4, 8, 12, 14]
    data = parser.to_dict()
    data.pop("id_func")  # a function does not survive to_dict (as with SentenceSplitter)
    again = GeminiMediaNodeParser.from_dict(data)
    assert again.overlap_seconds == 5.0
    assert again.resolved_limits.max_pdf_pages == 4
    assert parser.to_dict()["class_name"] == "GeminiMediaNodeParser"


def test_long_text_becomes_token_bounded_chunks() -> None:
    doc = Document(text=LONG_TEXT, metadata={"title": "a long note"})
    nodes = GeminiMediaNodeParser()([doc])
    assert len(nodes) > 1
    for node in nodes:
        assert isinstance(node, TextNode)
        start, end = node.metadata["char_start"], node.metadata["char_end"]
        assert LONG_TEXT[start:end] == node.text
        assert (node.start_char_idx, node.end_char_idx) == (start, end)
        # what the embedding will read, metadata included, fits the model
        assert estimate_tokens(node.get_content(metadata_mode=MetadataMode.EMBED)) <= 8192 - 16
        assert node.metadata["modality"] == "text"
        assert node.metadata["title"] == "a long note"
    _chain(nodes, doc.doc_id)
    assert "".join(n.text for n in nodes).replace("\n", "") == LONG_TEXT.replace("\n", "")

    small = GeminiMediaNodeParser(chunk_tokens=500)([doc])
    assert len(small) > len(nodes)
    assert all(estimate_tokens(n.text) <= 500 for n in small)

    short = GeminiMediaNodeParser()([Document(text=NOTES)])
    assert [n.text for n in short] == [NOTES]


def test_reader_then_parser_over_a_folder(corpus: Path) -> None:
    docs = GeminiMediaReader().load_data(corpus)
    by_name = {d.metadata["file_name"]: d for d in docs}
    assert sorted(by_name) == ["boat.mp4", "book.pdf", "notes.txt", "red_circle.png"]
    assert by_name["notes.txt"].text.strip() == NOTES
    assert by_name["red_circle.png"].text == "[image] red_circle.png"
    assert by_name["boat.mp4"].metadata["modality"] == "video"
    nodes = GeminiMediaNodeParser()(docs)
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n.metadata["file_name"]] = counts.get(n.metadata["file_name"], 0) + 1
    assert counts == {"boat.mp4": 2, "book.pdf": 3, "notes.txt": 1, "red_circle.png": 1}
    image = next(n for n in nodes if n.metadata["file_name"] == "red_circle.png")
    assert isinstance(image, ImageNode)
    assert image.image_path == str(corpus / "red_circle.png")
    assert image.image_mimetype == "image/png"
    assert image.resolve_image() == str(corpus / "red_circle.png")


def test_documents_naming_one_file_yield_its_pieces_once(corpus: Path) -> None:
    # SimpleDirectoryReader makes one text document per PDF page
    pages = [
        Document(text=text, metadata={"file_path": str(corpus / "book.pdf"), "page_label": str(i)})
        for i, text in enumerate(BOOK_PAGES, start=1)
    ]
    nodes = GeminiMediaNodeParser()(pages)
    assert len(nodes) == 3
    assert {n.ref_doc_id for n in nodes} == {pages[0].doc_id}


def test_media_held_in_memory_passes_through_labelled(media_dir: Path) -> None:
    png = (media_dir / "blue_square.png").read_bytes()
    wav = (media_dir / "piano.wav").read_bytes()
    image_doc = ImageDocument(image=base64.b64encode(png).decode())
    audio_doc = Document(audio_resource=MediaResource(data=wav, mimetype="audio/wav"))
    nodes = GeminiMediaNodeParser()([image_doc, audio_doc])
    assert len(nodes) == 2
    image, audio = nodes
    assert isinstance(image, ImageNode) and image.image == image_doc.image
    assert image.metadata["modality"] == "image"
    assert image.get_content().startswith("[image] ")
    assert isinstance(audio, Node) and audio.audio_resource is not None
    assert audio.metadata["modality"] == "audio"
    assert audio.get_content().startswith("[audio] ")
    # distinct content hashes: IngestionPipeline's cache keys differ
    assert image.metadata["file_hash"] != audio.metadata["file_hash"]
    assert image.get_content(metadata_mode=MetadataMode.ALL) != audio.get_content(
        metadata_mode=MetadataMode.ALL
    )


def test_resource_and_image_paths_are_split_like_files(corpus: Path, media_dir: Path) -> None:
    video = Document(video_resource=MediaResource(path=corpus / "boat.mp4"), text="v")
    image = ImageDocument(image_path=str(media_dir / "red_circle.png"), text="i")
    nodes = GeminiMediaNodeParser()([video, image])
    assert [n.metadata["modality"] for n in nodes] == ["video", "video", "image"]
    assert nodes[2].metadata["source"] == str(media_dir / "red_circle.png")


def test_a_textless_media_document_is_refused_only_under_the_cache(media_dir: Path) -> None:
    # built by hand: no text, so its get_content() (all IngestionPipeline's cache keys on) is ""
    png = str(media_dir / "red_circle.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nodes = GeminiMediaNodeParser()([ImageDocument(image_path=png)])  # no cache: fine
    assert len(nodes) == 1
    pipeline = IngestionPipeline(transformations=[GeminiMediaNodeParser()])
    with pytest.raises(InputError, match=r"red_circle\.png.*label_media") as info:
        pipeline.run(documents=[ImageDocument(image_path=png)])
    assert "disable_cache=True" in str(info.value)
    # the named fixes: label_media, or a gemb2 reader
    assert len(pipeline.run(documents=label_media([ImageDocument(image_path=png)]))) == 1
    assert len(pipeline.run(documents=GeminiMediaReader().load_data(png))) == 1


def test_empty_and_unsupported_inputs(tmp_path: Path, media_dir: Path) -> None:
    assert GeminiMediaNodeParser()([Document(text="   ")]) == []
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"\x00\x01binary")
    with pytest.raises(UnsupportedMediaError, match="unsupported"):
        GeminiMediaNodeParser()([Document(metadata={"file_path": str(odd)})])
    (tmp_path / "empty.txt").write_text("")
    samples.make_png(tmp_path / "p.png", "a red circle")
    odd.rename(tmp_path / "data.docx")
    docs = GeminiMediaReader().load_data(tmp_path)
    assert [d.metadata["file_name"] for d in docs] == ["p.png"]


def test_parsing_parsed_nodes_changes_nothing(corpus: Path) -> None:
    nodes = GeminiMediaNodeParser()(GeminiMediaReader().load_data(corpus / "book.pdf"))
    again = GeminiMediaNodeParser()(nodes)
    assert [n.node_id for n in again] == [n.node_id for n in nodes]
    text_nodes = GeminiMediaNodeParser()([Document(text=LONG_TEXT)])
    assert [n.node_id for n in GeminiMediaNodeParser()(text_nodes)] == [
        n.node_id for n in text_nodes
    ]
