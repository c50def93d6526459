"""Models built from the recurrent layers: :class:`SequenceClassifier` (seeds 000, 001, 002, 003,
004), :class:`LanguageModel` (seed 002's character-level RNN, tiny-shakespeare) and
:class:`Forecaster` (time series); and :class:`PaddedClassifier`, the classifier's inference
forward that serving and the ONNX export both run.

Shapes: token input ``(B, T)`` int64 (0 = padding), or real-valued input ``(B, T, F)``;
``lengths (B,)``; logits ``(B, 1)`` for two classes (sigmoid head, as the seeds' Keras models)
or ``(B, C)`` for C > 2 classes (softmax head).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from lstmkit.layers import GRU, LSTM, RNN, DropoutMasks, Recurrent, flip_rows
from lstmkit.ngrams import NgramBranch

POOLINGS = ("last", "mean", "max", "attention", "mean+max")
CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def probabilities(logits: Tensor, binary: bool) -> Tensor:
    """Class probabilities (B, C) of a classifier's logits: ``[1 - p, p]`` of the sigmoid head's
    (B, 1) when ``binary``, else the softmax of (B, C)."""
    if binary:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p, p], -1)
    return torch.softmax(logits, -1)


class ClassifierConfig(BaseModel):
    """Architecture of a :class:`SequenceClassifier`. Seed names in brackets.

    Attributes:
        num_classes: [class_sizes] 2 -> one sigmoid output; more -> softmax.
        vocab_size: tokens 0..vocab_size-1 (0 is padding); None for real-valued input.
        input_size: features per step for real-valued input (vocab_size None).
        embedding_dim: [embedding_dim] size of the word vectors.
        conv_filters, conv_kernel, pool_size: seed 002's Conv1D(relu, 'valid') + MaxPool1D before
            the recurrent stack; 0 filters = none.
        cell: 'lstm' | 'gru' | 'rnn'. hidden_size: [hidden_size]. num_layers: [num_layers].
        layer_sizes: a stack of recurrent layers of different sizes, e.g. [64, 32] for seed
            004's LSTM(64, return_sequences=True) -> LSTM(32); replaces hidden_size and
            num_layers (inspection and ONNX export take uniform stacks only).
        dense_sizes: relu layers between the pooling and the head, e.g. [16] for seed 004's
            Dense(16, relu) (output_dropout then acts after them, as its Dropout(0.5)).
        dropout: between recurrent layers. output_dropout: before the head (seed 000's
            dropout_keep_prob = 1 - output_dropout). embedding_dropout: on the word vectors.
        pooling: 'last' (state after the true last token) | 'mean' | 'max' | 'attention' |
            'mean+max' (concatenated) over the valid steps.
        init: 'keras' (the seeds' initialisation: embeddings U(-0.05, 0.05), Glorot-uniform
            input and dense kernels, orthogonal recurrent kernels, zero biases) or 'torch'
            (torch's defaults: N(0, 1) embeddings, U(-1/sqrt(H), 1/sqrt(H)) everywhere).
        cell_options: passed to the recurrent layer (forget_bias, peephole, recurrent_dropout, ...).
        ngrams: 0 = none; n (up to 5) = add an NBSVM-style linear branch over binarised, hashed 1..n-grams
            of the token ids, each scaled by its naive-Bayes log-count ratio fitted on the
            training split (:mod:`lstmkit.ngrams`); its logits add to the head's ("wide and
            deep"). Token input only.
        ngram_buckets: hash slots of that branch (its weights: ngram_buckets x outputs).
        ngram_dropout: branch dropout in training: with this probability an example's logits
            come from one branch alone (the n-gram or the recurrent one, evenly), else from
            their sum. 1.0 trains the two as an ensemble (each example updates exactly one
            branch on its own loss, so neither leans on the other); 0.0 trains them jointly.
            Prediction always sums both.
        members: independently initialised recurrent networks (embedding -> [conv] ->
            recurrent stack -> pooling -> head) side by side, a deep ensemble (Lakshminarayanan
            et al. 2017): in training each member's logits get their own loss (the objective
            averages the members' losses, so no member leans on another), in prediction the
            members' logits are averaged; the n-gram branch is one, shared. Word vectors loaded
            or pretrained into the embedding start every member's embedding. 1 = one network.
    """

    model_config = ConfigDict(extra="forbid")

    num_classes: int = Field(2, ge=2, le=100_000)
    vocab_size: int | None = Field(10000, ge=2, le=10_000_000)
    input_size: int | None = Field(None, ge=1, le=100_000)
    embedding_dim: int = Field(32, ge=1, le=4096)
    conv_filters: int = Field(0, ge=0, le=4096)
    conv_kernel: int = Field(5, ge=1, le=64)
    pool_size: int = Field(4, ge=1, le=64)
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    hidden_size: int = Field(32, ge=1, le=8192)
    num_layers: int = Field(1, ge=1, le=16)
    layer_sizes: list[Annotated[int, Field(ge=1, le=8192)]] | None = Field(
        None, min_length=1, max_length=16
    )
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    output_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    embedding_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    pooling: Literal["last", "mean", "max", "attention", "mean+max"] = "last"
    dense_sizes: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=list, max_length=8
    )
    impl: Literal["auto", "fused", "kernel", "loop"] = "auto"
    init: Literal["keras", "torch"] = "keras"
    cell_options: dict[str, Any] = Field(default_factory=dict)
    ngrams: int = Field(0, ge=0, le=5)
    ngram_buckets: int = Field(2**21, ge=1024, le=2**24)
    ngram_dropout: float = Field(0.0, ge=0.0, le=1.0)
    members: int = Field(1, ge=1, le=16)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-safe) of the configuration."""
        return self.model_dump()


def keras_init_(
    embedding: nn.Embedding | None,
    dense: Sequence[nn.Linear | nn.Conv1d | None],
    rnn: Recurrent,
    *,
    padding_row: bool = True,
) -> None:
    """Keras' default initialisers in place: embeddings U(-0.05, 0.05) (row 0, the padding id,
    zero when ``padding_row``), Glorot-uniform dense/conv and input kernels, orthogonal recurrent
    kernels, zero biases."""
    with torch.no_grad():
        if embedding is not None:
            nn.init.uniform_(embedding.weight, -0.05, 0.05)
            if padding_row:
                embedding.weight[0].zero_()
        for module in dense:
            if module is not None:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for cell in rnn.cells:
            for name, p in cell.named_parameters():
                if name == "weight_ih":
                    nn.init.xavier_uniform_(p)
                elif name == "weight_hh":
                    # Keras: orthogonal on the (H_out, G*H) recurrent kernel, i.e. on p^T
                    nn.init.orthogonal_(p.data.t())
                elif name.startswith("bias"):
                    nn.init.zeros_(p)


class SequenceClassifier(nn.Module):
    """Embedding (or real-valued input) -> [Conv1D + MaxPool] -> recurrent stack -> pooling ->
    dropout -> linear head. See :class:`ClassifierConfig`."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        c = config
        if c.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {c.num_classes}")
        if c.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {c.pooling!r}")
        if c.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {c.cell!r}")
        if (c.vocab_size is None) == (c.input_size is None):
            raise ValueError(
                "give exactly one of vocab_size (token input) and input_size (real-valued input)"
            )
        self.config = c
        if c.vocab_size is not None:
            self.embedding: nn.Embedding | None = nn.Embedding(
                c.vocab_size, c.embedding_dim, padding_idx=0
            )
            feat = c.embedding_dim
        else:
            self.embedding = None
            feat = int(c.input_size or 0)
        self.embedding_dropout = nn.Dropout(c.embedding_dropout)
        if c.conv_filters:
            self.conv: nn.Conv1d | None = nn.Conv1d(feat, c.conv_filters, c.conv_kernel)
            feat = c.conv_filters
        else:
            self.conv = None
        sizes = c.layer_sizes or [c.hidden_size]
        self.rnn: Recurrent = CELLS[c.cell](
            feat,
            sizes[0],
            c.num_layers if c.layer_sizes is None else 1,
            bidirectional=c.bidirectional,
            dropout=c.dropout,
            impl=c.impl,
            **c.cell_options,
        )
        width = self.rnn.num_directions * self.rnn.output_size
        more: list[Recurrent] = []
        for size in sizes[1:]:
            more.append(
                CELLS[c.cell](
                    width, size, 1, bidirectional=c.bidirectional, impl=c.impl, **c.cell_options
                )
            )
            width = more[-1].num_directions * more[-1].output_size
        self.more_rnn = nn.ModuleList(more)
        self.between_dropout = nn.Dropout(c.dropout)
        if c.pooling == "attention":
            self.attn_proj: nn.Linear | None = nn.Linear(width, width)
            self.attn_query: nn.Parameter | None = nn.Parameter(torch.randn(width) / width**0.5)
        else:
            self.attn_proj = None
            self.attn_query = None
        self.output_dropout = nn.Dropout(c.output_dropout)
        pooled = 2 * width if c.pooling == "mean+max" else width
        dense = []
        for size in c.dense_sizes:
            dense.append(nn.Linear(pooled, size))
            pooled = size
        self.dense = nn.ModuleList(dense)
        self.head = nn.Linear(pooled, 1 if c.num_classes == 2 else c.num_classes)
        if c.ngrams and c.vocab_size is None:
            raise ValueError(
                f"model.ngrams = {c.ngrams} needs token input (a vocabulary); this model reads "
                "real-valued sequences -- set model.ngrams = 0"
            )
        self.ngram: NgramBranch | None = (
            NgramBranch(c.ngrams, c.ngram_buckets, self.head.out_features) if c.ngrams else None
        )
        if c.init == "keras":
            self.keras_init()
        # the deep ensemble's other members (this module is the first): whole networks without
        # an n-gram branch of their own; an empty list adds no weights, so a one-member model's
        # state is what it always was
        alone = c.model_copy(update={"members": 1, "ngrams": 0})
        self.others = nn.ModuleList(SequenceClassifier(alone) for _ in range(c.members - 1))

    def member_models(self) -> list[SequenceClassifier]:
        """The deep ensemble's networks, this one first (``[self]`` for one member). Each
        member's ``embedding``, ``rnn``, ``head``, ... are its own; only the first holds the
        n-gram branch."""
        return [self, *(m for m in self.others if isinstance(m, SequenceClassifier))]

    def embeddings(self) -> list[nn.Embedding]:
        """Every member's embedding (empty for real-valued input)."""
        return [m.embedding for m in self.member_models() if m.embedding is not None]

    def copy_embedding_to_members(self) -> None:
        """The first member's embedding weights (loaded or pretrained word vectors) into the
        other members' embeddings, and its ``requires_grad`` (frozen vectors stay frozen)."""
        first = self.embedding
        if first is None:
            return
        with torch.no_grad():
            for emb in self.embeddings()[1:]:
                emb.weight.copy_(first.weight)
                emb.weight.requires_grad_(first.weight.requires_grad)

    def keras_init(self) -> None:
        """Keras' default initialisers (what the seeds' models start from)."""
        dense = [self.conv, self.attn_proj, *self.dense, self.head]
        for rnn in (self.rnn, *self.more_rnn):
            keras_init_(self.embedding, dense, rnn)

    @property
    def binary(self) -> bool:
        """True for the two-class (sigmoid) head."""
        return self.config.num_classes == 2

    def features(
        self, x: Tensor, lengths: Tensor | None = None, perturb: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Input -> per-step features for the recurrent stack, and the lengths after conv/pool.

        ``perturb`` (B, T, E): added to the word vectors after the embedding dropout, before
        the conv/recurrent stack (adversarial training, :mod:`lstmkit.adversarial`; Miyato et
        al. 2017 perturb the same place). Token input only.
        """
        if self.embedding is not None:
            if x.dim() != 2 or x.is_floating_point():
                raise ValueError(
                    f"expected token ids of shape (B, T) int64, got {tuple(x.shape)} {x.dtype}"
                )
            feats = self.embedding_dropout(self.embedding(x))  # (B, T, E)
            if perturb is not None:
                if perturb.shape != feats.shape:
                    raise ValueError(
                        f"perturb must have the embedded input's shape {tuple(feats.shape)}, "
                        f"got {tuple(perturb.shape)}"
                    )
                feats = feats + perturb
        else:
            if perturb is not None:
                raise ValueError(
                    "perturb acts on word vectors; this model reads real-valued input (no embedding)"
                )
            feats = self.embedding_dropout(x)
        if self.conv is not None:
            c = self.config
            steps = feats.shape[1]
            if steps < c.conv_kernel:
                feats = F.pad(feats, (0, 0, 0, c.conv_kernel - steps))
            z = F.relu(self.conv(feats.transpose(1, 2)))  # (B, filters, T - k + 1)
            if lengths is not None:
                # conv windows that reach into the padding are zeroed: after the relu every
                # real output is >= 0, so a pooling window keeps the max of its real outputs,
                # the same as for the sequence alone (padding never changes a prediction)
                valid = (lengths.to(z.device) - c.conv_kernel + 1).clamp(min=1)
                z = z * (
                    torch.arange(z.shape[-1], device=z.device)[None, :] < valid[:, None]
                ).unsqueeze(1)
            z = (
                F.max_pool1d(z, c.pool_size)
                if z.shape[-1] >= c.pool_size
                else z.amax(-1, keepdim=True)
            )
            feats = z.transpose(1, 2)
            if lengths is not None:
                lengths = (valid.cpu() // c.pool_size).clamp(1, feats.shape[1])
        return feats, lengths

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, perturb: Tensor | None = None
    ) -> Tensor:
        """Logits: (B, 1) for two classes, (B, C) otherwise. ``perturb`` (B, T, E): added to
        the (dropped-out) word vectors, see :meth:`features`; the n-gram branch never sees it.
        With several :attr:`ClassifierConfig.members`, training mode gives every member's
        logits, (B, members, 1 or C), each with the n-gram branch added (the objective averages
        their losses: :class:`lstmkit.objectives.Classification`); eval mode their mean."""
        wide = self.ngram(x, lengths) if self.ngram is not None else None
        if self.others:
            each = [m.deep_logits(x, lengths, perturb) for m in self.member_models()]
            logits = torch.stack(each, 1) if self.training else torch.stack(each, 0).mean(0)
        else:
            logits = self.deep_logits(x, lengths, perturb)
        if wide is None:
            return logits
        if logits.dim() == 3:
            wide = wide.unsqueeze(1)
        p = self.config.ngram_dropout
        if self.training and p > 0:
            # per example: u < p/2 -> the n-gram branch alone, p/2 <= u < p -> the recurrent
            # one alone, else both
            u = torch.rand(logits.shape[0], *([1] * (logits.dim() - 1)), device=logits.device)
            deep = (u >= p / 2).to(logits.dtype)
            return logits * deep + wide * ((u < p / 2) | (u >= p)).to(logits.dtype)
        return logits + wide

    def deep_logits(
        self, x: Tensor, lengths: Tensor | None = None, perturb: Tensor | None = None
    ) -> Tensor:
        """This network's logits without the n-gram branch (of this member alone)."""
        feats, lengths = self.features(x, lengths, perturb)
        out, state = self.rnn(feats, lengths=lengths)
        for layer in self.more_rnn:
            out, state = layer(self.between_dropout(out), lengths=lengths)
        pooled = self.pool(out, state, lengths)
        for dense in self.dense:
            pooled = F.relu(dense(pooled))
        return self.head(self.output_dropout(pooled))

    def pool(
        self, out: Tensor, state: Tensor | tuple[Tensor, ...], lengths: Tensor | None
    ) -> Tensor:
        """Reduce the recurrent outputs (B, T, W) to (B, W) (or (B, 2W) for 'mean+max')."""
        kind = self.config.pooling
        if kind == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            dirs = self.rnn.num_directions  # every layer of the stack has the same directions
            return torch.cat([h_n[-dirs + d] for d in range(dirs)], -1)
        steps = out.shape[1]
        if lengths is None:
            valid = torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)
        else:
            valid = (
                torch.arange(steps, device=out.device)[None, :] < lengths.to(out.device)[:, None]
            )
        mask = valid.unsqueeze(-1)  # (B, T, 1)
        if kind == "attention":
            assert self.attn_proj is not None and self.attn_query is not None
            scores = torch.tanh(self.attn_proj(out)) @ self.attn_query  # (B, T)
            weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
            return (weights.unsqueeze(-1) * out).sum(1)
        mean = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
        mx = out.masked_fill(~mask, float("-inf")).amax(1)
        if kind == "mean":
            return mean
        if kind == "max":
            return mx
        return torch.cat([mean, mx], -1)

    def predict_proba(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Class probabilities (B, C) (C = 2 for the sigmoid head: [1 - p, p])."""
        return probabilities(self(x, lengths), self.binary)


class LanguageModelConfig(BaseModel):
    """Architecture of a :class:`LanguageModel` (next-token prediction).

    Attributes:
        vocab_size: tokens 0..vocab_size-1 (set from the data's vocabulary).
        embedding_dim: size of the token vectors; 0 = one-hot input (seed 002's 'hell' toy).
        cell, hidden_size, num_layers, dropout (between layers), output_dropout (before the
            softmax layer), embedding_dropout, impl, init, cell_options: as for
            :class:`ClassifierConfig`.
        tie_weights: share the embedding matrix with the output layer (Press & Wolf 2017); needs
            embedding_dim == hidden_size.
    """

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(65, ge=2, le=10_000_000)
    embedding_dim: int = Field(64, ge=0, le=4096)
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    hidden_size: int = Field(256, ge=1, le=8192)
    num_layers: int = Field(1, ge=1, le=16)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    output_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    embedding_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    impl: Literal["auto", "fused", "kernel", "loop"] = "auto"
    init: Literal["keras", "torch"] = "keras"
    tie_weights: bool = False
    cell_options: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-safe) of the configuration."""
        return self.model_dump()


LMState = Tensor | tuple[Tensor, ...]
"""A language model's recurrent state: ``(h, c)`` for an LSTM, ``h`` for a GRU / RNN; each
``(L, B, H)`` (see :mod:`lstmkit.layers`)."""


class LanguageModel(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, V): embedding (or one-hot) -> recurrent stack
    -> dropout -> linear layer over the vocabulary.

    The state is passed in and returned, ``model(x, state) -> (logits, state)``, so a caller
    reading a text in consecutive chunks (truncated BPTT) hands each chunk the state the previous
    one ended with; the model keeps none. The caller detaches it where the gradient should stop
    (:class:`lstmkit.train.Trainer` does, at every chunk boundary). :meth:`generate` samples text.
    """

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        if c.embedding_dim:
            self.embedding: nn.Embedding | None = nn.Embedding(c.vocab_size, c.embedding_dim)
            feat = c.embedding_dim
        else:
            self.embedding = None
            feat = c.vocab_size
        self.embedding_dropout = nn.Dropout(c.embedding_dropout)
        if c.cell_options.get("bidirectional"):
            raise ValueError("a language model cannot be bidirectional (it would see the future)")
        self.rnn: Recurrent = CELLS[c.cell](
            feat, c.hidden_size, c.num_layers, dropout=c.dropout, impl=c.impl, **c.cell_options
        )
        self.output_dropout = nn.Dropout(c.output_dropout)
        self.head = nn.Linear(self.rnn.output_size, c.vocab_size)
        if c.init == "keras":
            keras_init_(self.embedding, [self.head], self.rnn, padding_row=False)
        if c.tie_weights:
            if self.embedding is None or c.embedding_dim != self.rnn.output_size:
                raise ValueError(
                    f"tie_weights needs embedding_dim == hidden_size, got {c.embedding_dim} and {self.rnn.output_size}"
                )
            self.head.weight = self.embedding.weight

    def features(self, x: Tensor) -> Tensor:
        """Token ids (B, T) -> input vectors (B, T, E) (one-hot when embedding_dim is 0)."""
        if x.dim() != 2 or x.is_floating_point():
            raise ValueError(
                f"expected token ids of shape (B, T) int64, got {tuple(x.shape)} {x.dtype}"
            )
        if self.embedding is not None:
            return self.embedding_dropout(self.embedding(x))
        return F.one_hot(x, self.config.vocab_size).to(self.head.weight.dtype)

    def forward(
        self, x: Tensor, state: LMState | None = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor, LMState]:
        """Logits (B, T, V) of the token after each position, and the state after the last one.

        Args:
            x: token ids (B, T).
            state: the state to start from (:data:`LMState`, ``(L, B, H)`` each); zeros when None.
                Not detached here: the gradient flows into it unless the caller detaches it.
            lengths: true lengths (B,) of right-padded rows (None: every row is T long).
        """
        out, new = self.rnn(self.features(x), state, lengths=lengths)  # (B, T, H)
        return self.head(self.output_dropout(out)), new

    @torch.no_grad()
    def generate(
        self,
        prime: Tensor,
        length: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample ``length`` tokens after the 1-D id sequence ``prime`` (not included in the
        result), passing the state from each step to the next. ``temperature`` < 1 sharpens the
        distribution; ``top_k`` keeps the k most likely tokens; ``generator`` makes the sample
        reproducible."""
        if prime.dim() != 1 or prime.numel() == 0:
            raise ValueError(
                f"prime must be a non-empty 1-D id sequence, got shape {tuple(prime.shape)}"
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.config.vocab_size:
            raise ValueError(f"top_k must be in 1..{self.config.vocab_size}, got {top_k}")
        was_training = self.training
        self.eval()
        logits, state = self(prime[None, :])
        last = logits[0, -1]  # (V,)
        out = []
        for _ in range(length):
            scaled = last / temperature
            if top_k is not None:
                kth = torch.topk(scaled, top_k).values[-1]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            token = torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator)
            out.append(int(token))
            logits, state = self(token[None, :], state)
            last = logits[0, -1]
        self.train(was_training)
        return torch.tensor(out, dtype=torch.int64)


# -- the inference forward that serving (lstmkit.bundle) and the ONNX export both run ---------
def padded_blockers(model: SequenceClassifier) -> list[str]:
    """Options of ``model`` that :class:`PaddedClassifier` cannot run exactly (empty: it can);
    the ONNX export (:mod:`lstmkit.export`) traces that class, so these block it too."""
    c = model.config
    out: list[str] = []
    if model.embedding is None:
        out.append("vocab_size=None (real-valued input; the export takes token ids)")
    if model.conv is not None:
        out.append(f"conv_filters={c.conv_filters} (the Conv1D + MaxPool front end)")
    if c.layer_sizes and len(c.layer_sizes) > 1:
        out.append(f"layer_sizes={c.layer_sizes} (a stack of layers of different sizes)")
    if c.dense_sizes:
        out.append(f"dense_sizes={c.dense_sizes} (relu layers before the head)")
    rnn = model.rnn
    out += [f"cell option {b}" for b in rnn.fused_blockers(training=False)]
    proj = c.cell_options.get("proj_size")
    if proj:
        out.append(f"cell option proj_size={proj} (ONNX's LSTM op has no projection)")
    if rnn.padding != "post":
        out.append(f"padding={rnn.padding!r} (the export takes post-padded tokens)")
    return out


class PaddedClassifier(nn.Module):
    """``(tokens, lengths) -> probabilities`` of an eval-mode :class:`SequenceClassifier`,
    computed without packing so that it traces into a graph with dynamic ``B`` and ``T``
    (see :mod:`lstmkit.export`'s docstring for why it is exact); for models the :func:`padded_blockers` list is empty.

    It is also :class:`lstmkit.bundle.Predictor`'s inference path: on CPU one fused call over
    the padded batch costs a fraction of the layer's packed / 'split' variable-length path on a
    batch of mixed lengths (seed 003's IMDB model, random batches of 8-32 reviews: 0.16 ms per
    review against 0.33-0.72 ms), the padding included."""

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.model = model

    def _recurrent(
        self, x: Tensor, lengths: Tensor, member: SequenceClassifier | None = None
    ) -> tuple[Tensor, Tensor]:
        """Outputs (B, T, dirs*H) exact at real steps, and the 'last' pooling (B, dirs*H), of
        ``member``'s recurrent stack (the first member's by default)."""
        rnn: Recurrent = (member or self.model).rnn
        dirs = rnn.num_directions
        op: Any = rnn._vf()
        masks = DropoutMasks()
        batch = x.shape[0]
        data = x
        last: list[Tensor] = []
        for layer in range(rnn.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                weights, has_bias = rnn._fused_weights(masks, [k])
                cell: Any = rnn.cells[k]
                sizes = {"h": cell.output_size, "c": cell.hidden_size}
                h0 = tuple(data.new_zeros(1, batch, sizes[s]) for s in cell.state_names)
                inp = flip_rows(data, lengths) if d else data
                res = op(
                    inp, h0 if len(h0) > 1 else h0[0], weights, has_bias, 1, 0.0, False, False, True
                )
                out = res[0]
                outs.append(flip_rows(out, lengths) if d else out)
                if layer == rnn.num_layers - 1:
                    # state after the true last token: the forward output at lengths - 1; the
                    # reverse direction's (in flipped order, also at lengths - 1)
                    idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])
                    last.append(out.gather(1, idx).squeeze(1))
            data = outs[0] if dirs == 1 else torch.cat(outs, -1)
        return data, torch.cat(last, -1)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Class probabilities (B, C), as :meth:`SequenceClassifier.predict_proba`."""
        m = self.model
        each = []
        for member in m.member_models():
            assert member.embedding is not None
            out, last = self._recurrent(member.embedding(tokens), lengths, member)
            pooled = last if m.config.pooling == "last" else member.pool(out, (last,), lengths)
            each.append(member.head(pooled))
        # the deep ensemble's mean logits, as SequenceClassifier's eval forward
        logits = each[0] if len(each) == 1 else torch.stack(each, 0).mean(0)
        if m.ngram is not None:
            logits = logits + m.ngram(tokens, lengths)
        return probabilities(logits, m.binary)


# -- forecasting ----------------------------------------------------------------------------
class ForecasterConfig(BaseModel):
    """Architecture of a :class:`Forecaster`.

    Attributes:
        input_size: columns per step (the target plus the features).
        horizon: values forecast at once (direct multi-step: one output per step ahead).
        cell, hidden_size, num_layers, bidirectional, dropout, impl, cell_options: the recurrent
            stack (as :class:`lstmkit.models.ClassifierConfig`).
        output_dropout: before the output layer.
        season: the period of the in-window baseline (1 = none: the naive forecast).
        baseline: the in-window forecast the network corrects: ``seasonal_naive`` (the window's
            last season repeated; the last value when ``season`` is 1), ``seasonal_mean`` (the
            latest season's mean, plus the drift between the window's first and last season
            means, plus the window's mean seasonal profile around that trend line; exact for a
            linear trend plus a fixed season; needs two seasons in the window).
        log: work on ``log(target)`` (a series whose changes grow with its level).
        scale: the target's typical change over one season, in the working units (log or not):
            what normalised values are divided by.
        feature_mean, feature_std: standardisation of the feature columns (1..F-1).
        quantiles: the band's quantiles (ascending, in (0, 1), holding 0.5: the point
            forecast); empty: point forecasts only (runs of lstmkit before the band). The band
            itself is the ``band`` buffer (horizon, Q), saved with the weights
            (:meth:`Forecaster.set_band`).
    """

    model_config = ConfigDict(extra="forbid")

    input_size: int = Field(1, ge=1, le=100_000)
    horizon: int = Field(1, ge=1, le=100_000)
    quantiles: list[float] = Field(default_factory=list)
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    hidden_size: int = Field(32, ge=1, le=8192)
    num_layers: int = Field(1, ge=1, le=16)
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    output_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    impl: Literal["auto", "fused", "kernel", "loop"] = "auto"
    cell_options: dict[str, Any] = Field(default_factory=dict)
    season: int = Field(1, ge=1, le=100_000)
    baseline: Literal["seasonal_naive", "seasonal_mean"] = "seasonal_naive"
    log: bool = False
    scale: float = Field(1.0, gt=0.0)
    feature_mean: list[float] = Field(default_factory=list)
    feature_std: list[float] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-safe)."""
        return self.model_dump()


class Forecaster(nn.Module):
    """``(B, lookback, F)`` windows in the series' own units -> ``(B, horizon)`` forecasts.

    Every window is normalised on its own, so the model does not care where the level is::

        z = log(target) if log else target            # (B, L)
        u = (z - z[:, -1]) / scale                    # relative to the window's last value
        base = baseline(u)                            # (B, H) in-window forecast (config.baseline)
        inputs = [u, u - u shifted by season, standardised features]    # (B, L, 2 + F - 1)
        forward = base + head(rnn(inputs)[last state])                 # (B, H), normalised
        predict = inverse(z[:, -1] + scale * forward)                  # the series' units

    The head starts at zero, so the untrained model *is* its baseline; training only adds the
    correction that the data support (the forecast task keeps it only when it beats the baseline
    on validation). :meth:`forward` is what the Trainer fits (against :meth:`normalise_target`);
    :meth:`predict` is the forecast. The baselines need ``lookback >= season``
    (``seasonal_mean``: two seasons).
    """

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        if c.feature_mean and len(c.feature_mean) != c.input_size - 1:
            raise ValueError(
                f"feature_mean must have input_size - 1 = {c.input_size - 1} values, got "
                f"{len(c.feature_mean)}"
            )
        self.rnn: Recurrent = CELLS[c.cell](
            c.input_size + 1,
            c.hidden_size,
            c.num_layers,
            bidirectional=c.bidirectional,
            dropout=c.dropout,
            impl=c.impl,
            **c.cell_options,
        )
        width = self.rnn.num_directions * self.rnn.output_size
        self.output_dropout = nn.Dropout(c.output_dropout)
        self.head = nn.Linear(width, c.horizon)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        f = c.input_size - 1
        mean = c.feature_mean or [0.0] * f
        std = c.feature_std or [1.0] * f
        self.register_buffer("feature_mean", torch.tensor(mean, dtype=torch.float32), False)
        self.register_buffer("feature_std", torch.tensor(std, dtype=torch.float32), False)
        qs = c.quantiles
        if qs and (sorted(set(qs)) != qs or 0.5 not in qs or not (qs[0] > 0 and qs[-1] < 1)):
            raise ValueError(f"quantiles must be ascending, in (0, 1) and hold 0.5, got {qs}")
        self.median = qs.index(0.5) if qs else 0
        if qs:  # (H, Q) in normalised units around the point forecast: zero until set_band
            self.register_buffer("band", torch.zeros(c.horizon, len(qs)))

    def _check(self, x: Tensor) -> None:
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.input_size:
            raise ValueError(
                f"expected inputs of shape (B, lookback, {c.input_size}), got {tuple(x.shape)}"
            )
        need = 2 * c.season if c.baseline == "seasonal_mean" else c.season
        if x.shape[1] < need:
            raise ValueError(
                f"the {c.baseline} baseline of season {c.season} needs a lookback of at least "
                f"{need}, got {x.shape[1]}"
            )

    def _working(self, target: Tensor) -> Tensor:
        return torch.log(target.clamp_min(1e-30)) if self.config.log else target

    def level(self, x: Tensor) -> Tensor:
        """The window's last target value in the working units (B, 1)."""
        return self._working(x[:, -1:, 0])

    def baseline(self, u: Tensor) -> Tensor:
        """The in-window forecast (B, H) of normalised windows ``u`` (B, L)
        (:func:`in_window_baseline`)."""
        c = self.config
        return in_window_baseline(u, c.season, c.horizon, c.baseline)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Normalised forecasts (B, horizon): ``(z_future - z_last) / scale``."""
        self._check(x)
        c = self.config
        u = (self._working(x[..., 0]) - self.level(x)) / c.scale  # (B, L)
        d = torch.zeros_like(u)
        if 1 < c.season < u.shape[1]:
            d[:, c.season :] = u[:, c.season :] - u[:, : -c.season]
        mean, std = self.feature_mean, self.feature_std
        assert isinstance(mean, Tensor) and isinstance(std, Tensor)
        feats = (x[..., 1:] - mean) / std  # (B, L, F-1)
        inputs = torch.cat([u[..., None], d[..., None], feats], -1)  # (B, L, F+1)
        _, state = self.rnn(inputs, lengths=lengths)
        h_n = state[0] if isinstance(state, tuple) else state  # (L*dirs, B, H)
        dirs = self.rnn.num_directions
        last = torch.cat([h_n[-dirs + d] for d in range(dirs)], -1)  # (B, dirs*H)
        return self.baseline(u) + self.head(self.output_dropout(last))

    def normalise_target(self, x: Tensor, y: Tensor) -> Tensor:
        """Targets (B, H) in the series' units -> what :meth:`forward` is trained to output."""
        return (self._working(y) - self.level(x)) / self.config.scale

    def denormalise(self, x: Tensor, out: Tensor) -> Tensor:
        """:meth:`forward`'s output back to the series' units (B, H)."""
        z = self.level(x) + self.config.scale * out
        return torch.exp(z) if self.config.log else z

    def predict(self, x: Tensor) -> Tensor:
        """Forecasts (B, horizon) in the series' units."""
        return self.denormalise(x, self.forward(x))

    def predict_quantiles(self, x: Tensor) -> Tensor:
        """Quantile forecasts (B, horizon, Q) in the series' units: the point forecast plus the
        band (:meth:`set_band`); the median is :meth:`predict`'s forecast."""
        band = getattr(self, "band", None)
        if not isinstance(band, Tensor):
            raise ValueError("this forecaster has no band (config.quantiles is empty)")
        out = self.forward(x)[..., None] + band.to(x.dtype)
        z = self.level(x)[..., None] + self.config.scale * out
        return torch.exp(z) if self.config.log else z

    @torch.no_grad()
    def set_band(self, band: Tensor) -> None:
        """The band (horizon, Q), normalised units, 0 at the median, ascending per step
        (:func:`empirical_band`)."""
        c = self.config
        if band.shape != (c.horizon, len(c.quantiles)):
            raise ValueError(f"band must be ({c.horizon}, {len(c.quantiles)})")
        if bool((band.diff(dim=-1) < 0).any()) or bool(band[:, self.median].abs().max() > 0):
            raise ValueError("band must be ascending per step and 0 at the median")
        buf = self.band
        assert isinstance(buf, Tensor)
        buf.copy_(band)

    def zero_correction(self) -> None:
        """Make the model its baseline again (the head back to zero)."""
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()


class PanelForecasterConfig(BaseModel):
    """Architecture of a :class:`PanelForecaster` (one global model for many series).

    Attributes:
        input_size: columns per step: the target, the features, the calendar columns and, with
            ``num_series``, the series index last.
        horizon: values forecast at once (direct multi-step).
        quantiles: ascending, in (0, 1), holding 0.5 (the point forecast).
        members: independently initialised networks trained side by side on the same batches;
            the forecast is their mean (a deep ensemble: on small data the spread between seeds
            is larger than the differences between settings).
        cell, hidden_size, num_layers, dropout, impl: each member's recurrent stack.
        season: the period of the in-window baseline (1 = none: naive). baseline: as
            :class:`ForecasterConfig`.
        log: work on ``log(target)``.
        feature_mean, feature_std: standardisation of the columns 1 .. input_size - 1 (minus
            the series index).
        num_series, embedding_dim: a learned embedding of the series index (0 = none).
        interval_scale: the outer quantiles' distance from the median is multiplied by this
            factor at prediction; the model keeps it as a buffer saved with its weights (the
            forecast task calibrates it on validation so that the interval covers what it
            says).
    """

    model_config = ConfigDict(extra="forbid")

    input_size: int = Field(1, ge=1, le=100_000)
    horizon: int = Field(1, ge=1, le=100_000)
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    members: int = Field(5, ge=1, le=64)
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    hidden_size: int = Field(32, ge=1, le=8192)
    num_layers: int = Field(1, ge=1, le=16)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    impl: Literal["auto", "fused", "kernel", "loop"] = "auto"
    season: int = Field(1, ge=1, le=100_000)
    baseline: Literal["seasonal_naive", "seasonal_mean", "combined"] = "seasonal_naive"
    log: bool = False
    feature_mean: list[float] = Field(default_factory=list)
    feature_std: list[float] = Field(default_factory=list)
    num_series: int = Field(0, ge=0)
    embedding_dim: int = Field(0, ge=0, le=1024)
    interval_scale: float = Field(1.0, gt=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-safe)."""
        return self.model_dump()


def in_window_baseline(u: Tensor, season: int, horizon: int, kind: str) -> Tensor:
    """The in-window forecast (B, H) of normalised windows ``u`` (B, L): ``seasonal_naive`` (the
    last season repeated; the last value when ``season`` is 1) or ``seasonal_mean`` (the latest
    season's mean, plus the drift between the window's first and last season means, plus the
    window's mean seasonal profile around that trend line) or ``combined`` (the mean of the
    two: a combination of forecasts is rarely worse than its better member, the M-competitions'
    lesson)."""
    n, length = u.shape
    m, h = season, torch.arange(horizon, device=u.device)
    if kind == "seasonal_naive" or m == 1:
        return u[:, length + h - m * (h // m + 1)]
    if kind == "combined":
        return 0.5 * (
            in_window_baseline(u, season, horizon, "seasonal_naive")
            + in_window_baseline(u, season, horizon, "seasonal_mean")
        )
    k = length // m
    seasons = u[:, length - k * m :].reshape(n, k, m)  # (B, K, m), oldest first
    means = seasons.mean(2)
    drift = (means[:, -1] - means[:, 0]) / ((k - 1) * m)
    within = torch.arange(m, device=u.device, dtype=u.dtype) - (m - 1) / 2
    profile = (seasons - means[:, :, None] - drift[:, None, None] * within).mean(1)
    steps = h[None, :].to(u.dtype) + (m + 1) / 2
    return means[:, -1:] + drift[:, None] * steps + profile[:, h % m]


def empirical_band(errors: Tensor, quantiles: list[float]) -> Tensor:
    """(H, Q): per step, the ``quantiles`` of ``errors`` (n, H) -- target minus point forecast,
    in any units -- with the median's set to 0 (the point forecast stays as it is) and the
    others kept on their side of it. The point forecast plus this band is an empirical
    prediction interval (Williams & Goodman 1971): on out-of-sample errors it covers its
    nominal share even where they lean one way (a trend the forecast lags), which a band
    centred on the errors' median would not."""
    k = quantiles.index(0.5)
    q = torch.quantile(errors, torch.tensor(quantiles, dtype=errors.dtype), dim=0).T
    q[:, :k] = q[:, :k].clamp_max(0.0)
    q[:, k] = 0.0
    q[:, k + 1 :] = q[:, k + 1 :].clamp_min(0.0)
    return q.float()


def window_level_scale(target: Tensor, season: int, log: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(z, level, scale)`` of raw target windows (B, L): ``z`` the working values (``log``
    or not), ``level`` the last one (B, 1), ``scale`` (B, 1) the window's mean absolute change
    over one season (one step without a season, or when the window holds no full season), kept
    above 1e-3 of the window's mean magnitude (and 1e-8) so a flat window does not divide by
    zero. Every window is then on the same footing whatever its series' level and spread."""
    z = torch.log(target.clamp_min(1e-30)) if log else target
    m = season if 1 < season < z.shape[1] else 1
    if z.shape[1] > m:
        scale = (z[:, m:] - z[:, :-m]).abs().mean(1, keepdim=True)
    else:
        scale = torch.zeros_like(z[:, :1])
    floor = 1e-3 * z.abs().mean(1, keepdim=True) + 1e-8
    return z, z[:, -1:], torch.maximum(scale, floor)


def normalise_window_target(target: Tensor, y: Tensor, season: int, log: bool) -> Tensor:
    """Targets ``y`` (B, H) of raw target windows (B, L) in the windows' own units:
    ``(z(y) - level) / scale`` (:func:`window_level_scale`) -- what a
    :class:`PanelForecaster` is trained to output."""
    _, level, scale = window_level_scale(target, season, log)
    z = torch.log(y.clamp_min(1e-30)) if log else y
    return (z - level) / scale


class _Member(nn.Module):
    def __init__(self, c: PanelForecasterConfig, inputs: int) -> None:
        super().__init__()
        self.rnn: Recurrent = CELLS[c.cell](
            inputs, c.hidden_size, c.num_layers, dropout=c.dropout, impl=c.impl
        )
        self.head = nn.Linear(self.rnn.output_size, c.horizon * len(c.quantiles))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)


class PanelForecaster(nn.Module):
    """``(B, lookback, input_size)`` raw windows of any series -> normalised quantile forecasts
    ``(B, members, horizon, Q)``; :meth:`predict` gives them in the series' units.

    Every window is normalised on its own (:func:`window_level_scale`: relative to its last
    value, in units of its own seasonal change), so one network serves series of any level and
    spread::

        u = (z - level) / scale                                       # (B, L)
        base = in_window_baseline(u)                                  # (B, H)
        inputs = [u, u - u one season back, standardised features + calendar, embedding]
        raw = head(rnn(inputs)[last])                                 # (B, H, Q) per member
        median = base + raw[q=0.5];  upper q_j = q_{j-1} + softplus(raw_j); lower likewise

    so the quantiles are ascending by construction and an untrained network (head zero) is its
    baseline with a band set by the head's bias (:meth:`set_offsets`).
    """

    def __init__(self, config: PanelForecasterConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        qs = c.quantiles
        if not qs or sorted(set(qs)) != qs or 0.5 not in qs or not (qs[0] > 0 and qs[-1] < 1):
            raise ValueError(f"quantiles must be ascending, in (0, 1) and hold 0.5, got {qs}")
        self.median = qs.index(0.5)
        extra = 1 if c.num_series else 0
        f = c.input_size - 1 - extra
        if f < 0:
            raise ValueError("input_size must hold the target (and the series index)")
        mean = c.feature_mean or [0.0] * f
        std = c.feature_std or [1.0] * f
        if len(mean) != f or len(std) != f:
            raise ValueError(f"feature_mean / feature_std must have {f} values")
        self.register_buffer("feature_mean", torch.tensor(mean, dtype=torch.float32), False)
        self.register_buffer("feature_std", torch.tensor(std, dtype=torch.float32), False)
        self.embedding = (
            nn.Embedding(c.num_series, c.embedding_dim)
            if c.num_series and c.embedding_dim
            else None
        )
        width = 2 + f + (c.embedding_dim if self.embedding is not None else 0)
        self.members = nn.ModuleList(_Member(c, width) for _ in range(c.members))
        # calibrated after training (the forecast task): saved with the weights
        self.register_buffer("interval_scale", torch.tensor(c.interval_scale))

    def _members(self) -> list[_Member]:
        return [m for m in self.members if isinstance(m, _Member)]

    def _check(self, x: Tensor) -> None:
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.input_size:
            raise ValueError(
                f"expected inputs of shape (B, lookback, {c.input_size}), got {tuple(x.shape)}"
            )
        need = c.season if c.baseline == "seasonal_naive" else 2 * c.season
        if x.shape[1] < need:
            raise ValueError(
                f"the {c.baseline} baseline of season {c.season} needs a lookback of at least "
                f"{need}, got {x.shape[1]}"
            )

    def stats(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, level, scale)`` of raw windows (:func:`window_level_scale`)."""
        return window_level_scale(x[..., 0], self.config.season, self.config.log)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Normalised quantile forecasts (B, members, horizon, Q)."""
        self._check(x)
        c = self.config
        z, level, scale = self.stats(x)
        u = (z - level) / scale
        d = torch.zeros_like(u)
        if 1 < c.season < u.shape[1]:
            d[:, c.season :] = u[:, c.season :] - u[:, : -c.season]
        extra = 1 if c.num_series else 0
        mean, std = self.feature_mean, self.feature_std
        assert isinstance(mean, Tensor) and isinstance(std, Tensor)
        feats = (x[..., 1 : c.input_size - extra] - mean) / std
        parts = [u[..., None], d[..., None], feats]
        if self.embedding is not None:
            ids = x[:, -1, -1].round().long().clamp(0, c.num_series - 1)
            parts.append(self.embedding(ids)[:, None, :].expand(-1, x.shape[1], -1))
        inputs = torch.cat(parts, -1)
        base = in_window_baseline(u, c.season, c.horizon, c.baseline)  # (B, H)
        outs = []
        for member in self._members():
            _, state = member.rnn(inputs, lengths=lengths)
            h_n = state[0] if isinstance(state, tuple) else state
            # x.shape[0], not len(x): the ONNX tracer keeps the first as the graph's dynamic
            # batch, the second as a constant
            raw = member.head(h_n[-1]).view(x.shape[0], c.horizon, len(c.quantiles))
            outs.append(self._quantiles(base, raw))
        return torch.stack(outs, 1)

    def _quantiles(self, base: Tensor, raw: Tensor) -> Tensor:
        k = self.median
        med = base + raw[..., k]
        cols = [med]
        for j in range(k + 1, raw.shape[-1]):
            cols.append(cols[-1] + F.softplus(raw[..., j]))
        low = [med]
        for j in range(k - 1, -1, -1):
            low.append(low[-1] - F.softplus(raw[..., j]))
        return torch.stack(low[:0:-1] + cols, -1)

    def normalise_target(self, x: Tensor, y: Tensor) -> Tensor:
        """Targets (B, H) in the series' units -> the units of :meth:`forward`."""
        return normalise_window_target(x[..., 0], y, self.config.season, self.config.log)

    def predict(self, x: Tensor) -> Tensor:
        """Quantile forecasts (B, horizon, Q) in the series' units: the members' mean, the outer
        quantiles widened or narrowed by ``interval_scale`` around the median."""
        out = self.forward(x).mean(1)
        med = out[..., self.median : self.median + 1]
        scale_q = self.interval_scale
        assert isinstance(scale_q, Tensor)
        out = med + scale_q.to(out.dtype) * (out - med)
        _, level, scale = self.stats(x)
        z = level[..., None] + scale[..., None] * out
        return torch.exp(z) if self.config.log else z

    @torch.no_grad()
    def set_offsets(self, offsets: Tensor) -> None:
        """Start every member from its baseline with the band ``offsets`` (H, Q) (normalised
        units, ascending per step, 0 at the median): the head's bias, weights zero."""
        c = self.config
        k = self.median
        if offsets.shape != (c.horizon, len(c.quantiles)):
            raise ValueError(f"offsets must be ({c.horizon}, {len(c.quantiles)})")
        bias = torch.zeros_like(offsets)
        gaps = offsets.diff(dim=-1).clamp_min(1e-4)  # (H, Q-1): q_{j+1} - q_j
        inv = gaps + torch.log(-torch.expm1(-gaps))  # softplus^-1
        for j in range(k + 1, offsets.shape[-1]):
            bias[:, j] = inv[:, j - 1]
        for j in range(k - 1, -1, -1):
            bias[:, j] = inv[:, j]
        for member in self._members():
            member.head.weight.zero_()
            member.head.bias.copy_(bias.reshape(-1))
