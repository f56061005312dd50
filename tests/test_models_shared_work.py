"""Work shared between batch entries: self-attention of identical entries computed once, feed-forward slices."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from imageconductor.models import attention
from imageconductor.models.attention import (
    MIN_PADDED_TOKENS,
    PADDED_HEAD_DIM,
    SharedRowsAttnProcessor,
    distinct_entries,
    head_padding,
    scaled_dot_product_attention,
)
from imageconductor.models.feed_forward import ChunkedFeedForward, use_chunked_feed_forward


def test_distinct_entries_groups_exactly_equal_entries_only():
    torch.manual_seed(0)
    a, b = torch.randn(2, 6, 4)
    near_a = a.clone()
    near_a[3, 2] = torch.nextafter(near_a[3, 2], torch.tensor(10.0))  # one ulp away: a distinct entry
    batch = torch.stack([a, b, a, near_a, b])
    first, inverse = distinct_entries(batch)
    assert first.tolist() == [0, 1, 3]
    assert inverse.tolist() == [0, 1, 0, 2, 1]
    assert torch.equal(batch[first][inverse], batch)
    assert distinct_entries(torch.stack([a, b, near_a])) is None
    assert distinct_entries(a[None]) is None


def _attention() -> Attention:
    torch.manual_seed(1)
    return Attention(query_dim=16, heads=4, dim_head=4).eval()


def test_shared_rows_attention_equals_sdpa_attention():
    attn = _attention()
    torch.manual_seed(2)
    frames = torch.randn(3, 10, 16)
    batch = torch.cat([frames, frames, frames[:1].expand(4, -1, -1)])  # 10 entries, 3 distinct
    calls: list[int] = []
    attn.to_q.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        expected = attn(batch)
        attn.set_processor(SharedRowsAttnProcessor())
        shared = attn(batch)
        attn(batch, encoder_hidden_states=torch.randn(10, 5, 16))
    assert torch.equal(shared, expected)
    assert calls == [10, 3, 10]  # the shared path projects the distinct entries only; cross-attention all


def _kernel_head_dims(monkeypatch) -> list[int]:
    """Record the head dim of every call of PyTorch's SDPA kernel."""
    seen: list[int] = []
    kernel = torch.nn.functional.scaled_dot_product_attention

    def recording(query, *args, **kwargs):
        seen.append(query.shape[-1])
        return kernel(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    return seen


@pytest.mark.parametrize(
    ("head_dim", "values_per_call", "calls"), [(4, 2**20, 1), (8, 2**20, 1), (4, 10_000, 3)]
)
def test_small_heads_on_cpu_are_padded_to_16_with_the_same_result(
    monkeypatch, head_dim, values_per_call, calls
):
    torch.manual_seed(4)
    query = torch.randn(3, 3, MIN_PADDED_TOKENS + 5, head_dim)
    key, value = torch.randn(2, 3, 3, MIN_PADDED_TOKENS + 9, head_dim)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value)
    monkeypatch.setattr(attention, "_PADDED_VALUES_PER_CALL", values_per_call)  # 10_000: an entry a call
    seen = _kernel_head_dims(monkeypatch)
    padded = scaled_dot_product_attention(query, key, value)
    assert seen == [PADDED_HEAD_DIM] * calls
    assert padded.shape == expected.shape
    torch.testing.assert_close(padded, expected, rtol=1e-5, atol=1e-6)


def test_head_padding_only_where_it_pays():
    def padding(head_dim, tokens=MIN_PADDED_TOKENS, key_tokens=MIN_PADDED_TOKENS, dtype=torch.float32):
        query = torch.empty(1, 2, tokens, head_dim, dtype=dtype)
        return head_padding(query, torch.empty(1, 2, key_tokens, head_dim, dtype=dtype))

    assert padding(4) == 12
    assert padding(8, dtype=torch.bfloat16) == 8
    assert padding(16) == padding(40) == 0  # wide enough already
    assert padding(4, tokens=MIN_PADDED_TOKENS - 1) == 0  # short sequences (temporal attention) gain nothing
    assert padding(4, key_tokens=77) == 0  # cross-attention to a prompt
    assert padding(4, dtype=torch.float64) == 0  # slower padded
    assert head_padding(*torch.empty(2, 1, 2, 256, 4, device="meta")) == 0  # CPU only


def test_shared_rows_attention_pads_small_heads_like_sdpa_attention(monkeypatch):
    torch.manual_seed(5)
    attn = Attention(query_dim=16, heads=4, dim_head=4, residual_connection=True, rescale_output_factor=2.0)
    attn.eval()
    frames = torch.randn(3, MIN_PADDED_TOKENS + 16, 16)
    batch = torch.cat([frames, frames[1:]])  # 5 entries, 3 distinct
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        expected = attn(batch)
        attn.set_processor(SharedRowsAttnProcessor())
        seen = _kernel_head_dims(monkeypatch)
        shared = attn(batch)
    assert seen == [PADDED_HEAD_DIM]
    torch.testing.assert_close(shared, expected, rtol=1e-5, atol=1e-6)


def test_a_guided_step_computes_the_duplicate_rows_once(official_pipeline, official_sampling_inputs):
    """In a CFG step the first self-attention of every network sees identical rows, and frames 1.. of the
    image ControlNet's condition are alike: those entries are computed once."""
    computed: dict[str, list[tuple[int, int]]] = {}

    def record(name):
        def hook(module, args, kwargs, output):
            hidden = args[0] if args else kwargs["hidden_states"]
            groups = distinct_entries(hidden)
            computed.setdefault(name, []).append(
                (hidden.shape[0], hidden.shape[0] if groups is None else len(groups[0]))
            )

        return hook

    handles = []
    for name in ("unet", "image_controlnet", "flow_controlnet"):
        model = getattr(official_pipeline, name)
        first = next(m for n, m in model.named_modules() if n.endswith("attn1") and "motion" not in n)
        assert isinstance(first.processor, SharedRowsAttnProcessor)
        handles.append(first.register_forward_hook(record(name), with_kwargs=True))
    inputs = dict(official_sampling_inputs, num_inference_steps=1)
    try:
        official_pipeline(**inputs, output_type="latent")
    finally:
        for handle in handles:
            handle.remove()
    frames = inputs["num_frames"]
    assert computed["unet"][0] == (2 * frames, frames)  # negative and positive rows alike
    assert computed["flow_controlnet"][0][1] <= frames  # rows alike; frames differ
    assert computed["image_controlnet"][0] == (2 * frames, 2)  # the first frame, and all the others


@pytest.mark.parametrize("max_tokens", [1, 7, 64, 10_000])
def test_chunked_feed_forward_matches_the_whole_batch(max_tokens):
    torch.manual_seed(3)
    feed_forward = FeedForward(16, activation_fn="geglu").eval()
    hidden = torch.randn(9, 7, 16)
    with torch.no_grad():
        expected = feed_forward(hidden)
        calls: list[int] = []
        feed_forward.net[0].register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
        assert use_chunked_feed_forward(feed_forward, max_tokens) == 1
        assert isinstance(feed_forward, ChunkedFeedForward)
        sliced = feed_forward(hidden)
    torch.testing.assert_close(sliced, expected, rtol=1e-6, atol=1e-6)
    assert sum(calls) == 9
    assert max(calls) == min(9, max(max_tokens // 7, 1))
    assert set(dict(feed_forward.named_parameters())) == set(
        dict(FeedForward(16, activation_fn="geglu").named_parameters())
    )


def test_chunked_feed_forward_refuses_an_empty_slice():
    with pytest.raises(ValueError, match="max_tokens"):
        use_chunked_feed_forward(FeedForward(8), 0)
