"""BPE training and encoding in compiled C++ that give exactly ``tokenizers``' BPE model and ids.

Why: on the 50,000 IMDB reviews (440k distinct Metaspace words) ``tokenizers``' ``BpeTrainer``
takes ~11 s on one thread (its pair counts and merge sets are hash maps of hash sets, updated
through a thread pool), and encoding the distinct words through a ``Tokenizer`` ~4.5 s (an
``Encoding`` with offsets per call); both here take a fraction of a second
(``benchmarks/data_pipeline.py``), which is what lets the BPE data pipeline outrun training.

What is reproduced (the tests compare ``tokenizer.json`` and ids with ``tokenizers`` on real
sentences in many scripts, on random small-alphabet corpora, which force every tie and
overlapping pair, and on the IMDB reviews):

- Training (``BpeTrainer`` with special tokens, ``vocab_size``, ``min_frequency``,
  ``limit_alphabet``; no prefix / suffix / initial alphabet / max token length): the special
  tokens get the first ids, then the alphabet -- every character of the words, weighted by the
  word counts; past ``limit_alphabet`` the rarest are dropped (``tokenizers`` drops among equal
  counts in an unspecified order; here the higher code points go first) -- in code-point order.
  A word's characters outside the alphabet are left out of it. Then the pairs of adjacent
  symbols are counted (weighted by the word counts) and the most frequent pair is merged
  (ties: the smaller pair of ids), until the vocabulary holds ``vocab_size`` tokens, no pair is
  left or the best count is under ``min_frequency``. The bookkeeping follows ``tokenizers``'
  exactly, including its quirks: a merged pair's own count is not lowered; a merge visits only
  the words its queue entry lists (those that held the pair when it was counted or gained it
  since); a merge whose result is already a token (a special token's text) takes that token's
  id; a queue entry whose count is stale is put back with the current count.
- Encoding one word: each character becomes its id (a character outside the vocabulary becomes
  ``[UNK]``, one per character: ``fuse_unk`` off), then the lowest-ranked mergeable adjacent
  pair is merged, leftmost first, until none is left; a queue entry is applied only if the
  pair now at its position merges into the same id (``tokenizers``' own test).

Build: on first use (never at import), ``$CXX`` (default ``g++``) compiles the source below into
the same cache as :mod:`lstmkit.kernels.compiled` (``bpe-<hash>.so``); a failed build raises
:class:`lstmkit.kernels.compiled.CompiledKernelError` with the compiler's message.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping, Sequence

import numpy as np

from lstmkit.kernels.compiled import CompiledKernelError, build_library

CXXFLAGS = ("-O2", "-std=c++17", "-fPIC")

SOURCE = r"""
#include <algorithm>
#include <cstdint>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

typedef std::u32string Str;
const uint32_t NCP = 0x110000;  // code points

inline uint64_t pair_key(uint32_t a, uint32_t b) { return ((uint64_t)a << 32) | b; }

struct Entry {  // a queue entry: a pair, its count when queued, the words it lists
  int64_t count;
  uint32_t a, b;
  int32_t words;  // index into Trainer::lists
};
struct EntryOrder {  // priority_queue's "less": the top is the largest count, then smallest pair
  bool operator()(const Entry& x, const Entry& y) const {
    if (x.count != y.count) return x.count < y.count;
    if (x.a != y.a) return x.a > y.a;
    return x.b > y.b;
  }
};

// pair -> count, open addressing with linear probing (pairs are never removed)
struct PairMap {
  static constexpr uint64_t EMPTY = ~0ULL;  // no pair of two 32-bit ids is all ones
  std::vector<uint64_t> keys;
  std::vector<int64_t> counts;
  size_t used = 0, mask = 0;
  int shift = 64;

  PairMap() { grow(1 << 16); }
  void grow(size_t cap) {
    std::vector<uint64_t> old_keys;
    std::vector<int64_t> old_counts;
    old_keys.swap(keys);
    old_counts.swap(counts);
    keys.assign(cap, EMPTY);
    counts.assign(cap, 0);
    mask = cap - 1;
    shift = 64 - __builtin_ctzll(cap);
    for (size_t k = 0; k < old_keys.size(); ++k) {
      if (old_keys[k] == EMPTY) continue;
      size_t i = slot(old_keys[k]);
      keys[i] = old_keys[k];
      counts[i] = old_counts[k];
    }
  }
  size_t slot(uint64_t key) const {  // the slot of key, or the empty slot where it goes
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> shift);
    while (keys[i] != EMPTY && keys[i] != key) i = (i + 1) & mask;
    return i;
  }
  int64_t& operator[](uint64_t key) {
    size_t i = slot(key);
    if (keys[i] == EMPTY) {
      if (2 * (used + 1) > keys.size()) {
        grow(2 * keys.size());
        i = slot(key);
      }
      keys[i] = key;
      ++used;
    }
    return counts[i];
  }
};

// Per-symbol accumulators of one merge step: every pair a merge of (c1, c2) into r changes has
// c1, c2 or r on one side, so the changes are summed in arrays indexed by the other side and
// applied to the pair counts once per distinct pair at the end of the step.
struct Side {
  std::vector<int64_t> delta;
  std::vector<uint32_t> stamp, touched;
  void fit(size_t n) {
    if (delta.size() < n) {
      delta.resize(2 * n, 0);
      stamp.resize(2 * n, 0);
    }
  }
  void add(uint32_t x, int64_t d, uint32_t step) {
    if (stamp[x] != step) {
      stamp[x] = step;
      touched.push_back(x);
    }
    delta[x] += d;
  }
};

struct Result {
  std::vector<Str> vocab;
  std::vector<uint32_t> merges;  // (a, b, new id) per merge, in order
};

struct Trainer {
  std::unordered_map<Str, uint32_t> ids;
  Result* out;
  // word w at buf[at[w]]: its number of symbols, its count (two 32-bit halves), its symbols
  // (kept together: a merge visits ~4M words in scattered order, one cache miss each)
  std::vector<uint32_t> buf;
  std::vector<int64_t> at;
  PairMap pairs;
  std::vector<std::vector<int32_t>> lists;  // the words of each queue entry
  std::priority_queue<Entry, std::vector<Entry>, EntryOrder> queue;
  // one step: (x, c1), (x, r), (c2, y), (r, y); words that gained (x, r) / (r, y)
  Side before_c1, before_r, after_c2, after_r;
  std::vector<int32_t> gain_before, gain_after;  // list index per x / y (-1: none yet)
  std::vector<uint32_t> gain_stamp_before, gain_stamp_after;
  std::vector<std::pair<uint64_t, int32_t>> gains;  // (pair, list) in the order first gained
  uint32_t step = 0;

  uint32_t add(const Str& s) {
    auto it = ids.find(s);
    if (it != ids.end()) return it->second;
    uint32_t id = (uint32_t)out->vocab.size();
    out->vocab.push_back(s);
    ids.emplace(s, id);
    return id;
  }

  void fit(size_t n) {
    for (Side* side : {&before_c1, &before_r, &after_c2, &after_r}) side->fit(n);
    if (gain_before.size() < n) {
      gain_before.resize(2 * n, -1);
      gain_after.resize(2 * n, -1);
      gain_stamp_before.resize(2 * n, 0);
      gain_stamp_after.resize(2 * n, 0);
    }
  }

  // word w gained pair `key`, found by side index x (its list is per pair: (r, r) is both
  // (x, r) with x = r and (r, y) with y = r, so both sides use the `before` slot for it)
  void gained(std::vector<int32_t>& slot, std::vector<uint32_t>& stamp, uint32_t x,
              uint64_t key, int32_t w) {
    if (stamp[x] != step) {
      stamp[x] = step;
      slot[x] = (int32_t)lists.size();
      lists.emplace_back();
      gains.emplace_back(key, slot[x]);
    }
    std::vector<int32_t>& l = lists[slot[x]];
    if (l.empty() || l.back() != w) l.push_back(w);
  }

  // merge every (c1, c2) of word w into r, left to right (the scan resumes after r)
  void merge_word(int32_t w, uint32_t c1, uint32_t c2, uint32_t r) {
    uint32_t* head = buf.data() + at[w];
    uint32_t* s = head + 3;
    int64_t n = head[0], o = 0, i = 0, cw = (int64_t)head[1] | ((int64_t)head[2] << 32);
    while (i < n) {
      if (s[i] == c1 && i + 1 < n && s[i + 1] == c2) {
        if (o > 0) {
          uint32_t x = s[o - 1];
          before_c1.add(x, -cw, step);
          before_r.add(x, cw, step);
          gained(gain_before, gain_stamp_before, x, pair_key(x, r), w);
        }
        if (i + 2 < n) {
          uint32_t y = s[i + 2];
          after_c2.add(y, -cw, step);
          after_r.add(y, cw, step);
          if (y == r) {
            gained(gain_before, gain_stamp_before, r, pair_key(r, r), w);
          } else {
            gained(gain_after, gain_stamp_after, y, pair_key(r, y), w);
          }
        }
        s[o++] = r;
        i += 2;
      } else {
        s[o++] = s[i++];
      }
    }
    head[0] = (uint32_t)o;
  }

  void flush(Side& side, uint32_t fixed, bool fixed_first) {
    for (uint32_t x : side.touched) {
      pairs[fixed_first ? pair_key(fixed, x) : pair_key(x, fixed)] += side.delta[x];
      side.delta[x] = 0;
    }
    side.touched.clear();
  }

  // apply a step's changes to the pair counts, then queue the pairs words gained
  void end_step(uint32_t c1, uint32_t c2, uint32_t r) {
    flush(before_c1, c1, false);
    flush(before_r, r, false);
    flush(after_c2, c2, true);
    flush(after_r, r, true);
    queue_gains();
  }

  void queue_gains() {
    for (auto& g : gains) {
      int64_t count = pairs[g.first];
      if (count > 0) {
        queue.push(Entry{count, (uint32_t)(g.first >> 32), (uint32_t)g.first, g.second});
      } else {
        std::vector<int32_t>().swap(lists[g.second]);
      }
    }
    gains.clear();
    ++step;
  }
};

}  // namespace

extern "C" {

void* bpe_train(const uint32_t* cps, const int64_t* off, const int64_t* counts, int64_t n_words,
                const uint32_t* sp_cps, const int64_t* sp_off, int64_t n_special,
                int64_t vocab_size, int64_t min_frequency, int64_t limit_alphabet) {
  Trainer t;
  t.out = new Result();
  for (int64_t k = 0; k < n_special; ++k) t.add(Str(sp_cps + sp_off[k], sp_cps + sp_off[k + 1]));

  // the alphabet: characters weighted by word counts, the rarest dropped past the limit
  std::vector<uint64_t> freq(NCP, 0);
  std::vector<uint32_t> seen;
  for (int64_t w = 0; w < n_words; ++w) {
    for (int64_t j = off[w]; j < off[w + 1]; ++j) {
      uint32_t c = cps[j];
      if (freq[c] == 0) seen.push_back(c);
      freq[c] += (uint64_t)counts[w];
    }
  }
  if (limit_alphabet >= 0 && (int64_t)seen.size() > limit_alphabet) {
    std::sort(seen.begin(), seen.end(), [&](uint32_t x, uint32_t y) {
      return freq[x] != freq[y] ? freq[x] < freq[y] : x > y;
    });
    seen.erase(seen.begin(), seen.begin() + ((int64_t)seen.size() - limit_alphabet));
  }
  std::sort(seen.begin(), seen.end());
  for (uint32_t c : seen) t.add(Str(1, (char32_t)c));
  std::vector<int64_t> char_id(NCP, -1);  // every one-character token (specials included)
  for (auto& kv : t.ids) if (kv.first.size() == 1) char_id[kv.first[0]] = kv.second;

  // the words as symbols (characters outside the alphabet left out), their pairs counted
  t.buf.reserve((size_t)(off[n_words] + 3 * n_words));
  t.at.resize(n_words);
  for (int64_t w = 0; w < n_words; ++w) {
    t.at[w] = (int64_t)t.buf.size();
    uint64_t cw = (uint64_t)counts[w];
    t.buf.insert(t.buf.end(), {0u, (uint32_t)cw, (uint32_t)(cw >> 32)});
    for (int64_t j = off[w]; j < off[w + 1]; ++j) {
      int64_t id = char_id[cps[j]];
      if (id >= 0) t.buf.push_back((uint32_t)id);
    }
    t.buf[t.at[w]] = (uint32_t)((int64_t)t.buf.size() - t.at[w] - 3);
  }
  // the first counts: every pair lists the words it is in (step 0 gains, in word order)
  t.step = 1;
  std::unordered_map<uint64_t, int32_t> first;
  for (int64_t w = 0; w < n_words; ++w) {
    const uint32_t* s = t.buf.data() + t.at[w] + 3;
    for (int64_t j = 0; j + 1 < (int64_t)s[-3]; ++j) {
      uint64_t key = pair_key(s[j], s[j + 1]);
      t.pairs[key] += counts[w];
      auto it = first.find(key);
      if (it == first.end()) {
        it = first.emplace(key, (int32_t)t.lists.size()).first;
        t.lists.emplace_back();
        t.gains.emplace_back(key, it->second);
      }
      std::vector<int32_t>& l = t.lists[it->second];
      if (l.empty() || l.back() != (int32_t)w) l.push_back((int32_t)w);
    }
  }
  t.queue_gains();

  std::vector<int32_t> words;
  while ((int64_t)t.ids.size() < vocab_size && !t.queue.empty()) {
    Entry top = t.queue.top();
    t.queue.pop();
    int64_t now = t.pairs[pair_key(top.a, top.b)];
    if (top.count != now) {  // stale: back in the queue with the current count
      top.count = now;
      t.queue.push(top);
      continue;
    }
    if (top.count < 1 || top.count < min_frequency) break;
    uint32_t r = t.add(t.out->vocab[top.a] + t.out->vocab[top.b]);
    t.out->merges.insert(t.out->merges.end(), {top.a, top.b, r});
    t.fit(t.out->vocab.size() + 1);
    words.swap(t.lists[top.words]);
    std::vector<int32_t>().swap(t.lists[top.words]);
    // the words are scattered in memory: fetch a few ahead of the one being merged
    const size_t n = words.size(), ahead = 16;
    for (size_t k = 0; k < n; ++k) {
      if (k + 2 * ahead < n) __builtin_prefetch(&t.at[words[k + 2 * ahead]]);
      if (k + ahead < n) {
        const uint32_t* next = t.buf.data() + t.at[words[k + ahead]];
        __builtin_prefetch(next);
        __builtin_prefetch(next + 16);
      }
      t.merge_word(words[k], top.a, top.b, r);
    }
    t.end_step(top.a, top.b, r);
  }
  return t.out;
}

void bpe_result_sizes(void* res, int64_t* sizes) {
  Result* r = (Result*)res;
  int64_t chars = 0;
  for (auto& s : r->vocab) chars += (int64_t)s.size();
  sizes[0] = (int64_t)r->vocab.size();
  sizes[1] = chars;
  sizes[2] = (int64_t)r->merges.size() / 3;
}

void bpe_result_copy(void* res, uint32_t* cps, int64_t* off, uint32_t* merges) {
  Result* r = (Result*)res;
  int64_t k = 0;
  off[0] = 0;
  for (size_t i = 0; i < r->vocab.size(); ++i) {
    for (char32_t c : r->vocab[i]) cps[k++] = (uint32_t)c;
    off[i + 1] = k;
  }
  std::copy(r->merges.begin(), r->merges.end(), merges);
}

void bpe_result_free(void* res) { delete (Result*)res; }

// ids of each word under the merges (a, b, new id; rank = index); ids_out holds up to off[n]
// ids, n_out the number of ids of each word; returns the number of ids written
int64_t bpe_encode(const uint32_t* cps, const int64_t* off, int64_t n_words,
                   const uint32_t* char_cp, const uint32_t* char_id, int64_t n_chars,
                   const uint32_t* merges, int64_t n_merges, uint32_t unk_id,
                   int64_t* ids_out, int64_t* n_out) {
  std::vector<int64_t> single(NCP, -1);
  for (int64_t k = 0; k < n_chars; ++k) single[char_cp[k]] = char_id[k];
  struct Rule { uint32_t rank, id; };
  std::unordered_map<uint64_t, Rule> rules;
  rules.reserve((size_t)n_merges * 2);
  for (int64_t k = 0; k < n_merges; ++k)
    rules[pair_key(merges[3 * k], merges[3 * k + 1])] = Rule{(uint32_t)k, merges[3 * k + 2]};
  struct Item { uint32_t rank; int64_t pos; uint32_t id; };
  auto later = [](const Item& x, const Item& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::vector<Item> heap;
  std::vector<uint32_t> c;
  std::vector<int64_t> prev, next;
  std::vector<char> alive;
  int64_t total = 0;
  auto push = [&](int64_t pos, uint64_t key) {
    auto it = rules.find(key);
    if (it == rules.end()) return;
    heap.push_back(Item{it->second.rank, pos, it->second.id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int64_t w = 0; w < n_words; ++w) {
    int64_t n = off[w + 1] - off[w];
    c.resize(n);
    prev.resize(n);
    next.resize(n);
    alive.assign(n, 1);
    for (int64_t j = 0; j < n; ++j) {
      int64_t id = single[cps[off[w] + j]];
      c[j] = id < 0 ? unk_id : (uint32_t)id;
      prev[j] = j - 1;
      next[j] = j + 1 < n ? j + 1 : -1;
    }
    heap.clear();
    for (int64_t j = 0; j + 1 < n; ++j) push(j, pair_key(c[j], c[j + 1]));
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Item top = heap.back();
      heap.pop_back();
      int64_t p = top.pos;
      if (!alive[p] || next[p] < 0) continue;
      int64_t q = next[p];
      auto it = rules.find(pair_key(c[p], c[q]));
      if (it == rules.end() || it->second.id != top.id) continue;
      c[p] = top.id;
      next[p] = next[q];
      alive[q] = 0;
      if (next[q] >= 0) prev[next[q]] = p;
      if (prev[p] >= 0) push(prev[p], pair_key(c[prev[p]], c[p]));
      if (next[p] >= 0) push(p, pair_key(c[p], c[next[p]]));
    }
    int64_t k = 0;
    for (int64_t j = 0; j >= 0; j = next[j]) {
      if (n == 0) break;
      ids_out[total + k++] = c[j];
    }
    n_out[w] = k;
    total += k;
  }
  return total;
}

}  // extern "C"
"""


@functools.cache
def library() -> ctypes.CDLL:
    """The built and loaded BPE library (built on the first call of the process, then reused)."""
    lib = build_library("bpe", SOURCE, compiler_env="CXX", compiler="g++", flags=CXXFLAGS)
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bpe_train.restype = p
    lib.bpe_train.argtypes = [p, p, p, i64, p, p, i64, i64, i64, i64]
    lib.bpe_result_sizes.argtypes = [p, p]
    lib.bpe_result_copy.argtypes = [p, p, p, p]
    lib.bpe_result_free.argtypes = [p]
    lib.bpe_encode.restype = i64
    lib.bpe_encode.argtypes = [p, p, i64, p, p, i64, p, i64, ctypes.c_uint32, p, p]
    return lib


def _code_points(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(cps, offsets)``: the code points of string ``k`` are ``cps[offsets[k]:offsets[k+1]]``."""
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, strings), np.int64, len(strings)), out=offsets[1:])
    cps = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return np.ascontiguousarray(cps), offsets


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def train(
    counts: Mapping[str, int],
    *,
    vocab_size: int,
    min_frequency: int,
    limit_alphabet: int | None,
    special_tokens: Sequence[str],
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a BPE model on words and how often each occurs, as ``tokenizers``' ``BpeTrainer``
    with these settings does (see the module docstring).

    Returns:
        ``(vocab, merges)`` for ``tokenizers.models.BPE(vocab, merges, ...)``: token -> id, and
        the merges in rank order (a pair merged twice is kept at its last rank, as the
        trained ``tokenizers`` model keeps it).
    """
    if vocab_size < 0 or min_frequency < 0:
        raise ValueError(
            f"vocab_size and min_frequency must be >= 0: {vocab_size}, {min_frequency}"
        )
    words = [w for w, n in counts.items() if n > 0]
    if any(n < 0 for n in counts.values()):
        raise ValueError("a word count is negative")
    lib = library()
    cps, offsets = _code_points(words)
    freq = np.fromiter((counts[w] for w in words), np.int64, len(words))
    sp_cps, sp_off = _code_points(list(special_tokens))
    res = lib.bpe_train(
        _ptr(cps), _ptr(offsets), _ptr(freq), len(words), _ptr(sp_cps), _ptr(sp_off),
        len(special_tokens), vocab_size, min_frequency,
        -1 if limit_alphabet is None else limit_alphabet,
    )  # fmt: skip
    if not res:
        raise CompiledKernelError("lstmkit.data.bpe: the BPE trainer returned no result")
    try:
        sizes = np.zeros(3, dtype=np.int64)
        lib.bpe_result_sizes(res, _ptr(sizes))
        n_vocab, n_chars, n_merges = (int(x) for x in sizes)
        v_cps = np.zeros(n_chars, dtype=np.uint32)
        v_off = np.zeros(n_vocab + 1, dtype=np.int64)
        merges = np.zeros(3 * n_merges, dtype=np.uint32)
        lib.bpe_result_copy(res, _ptr(v_cps), _ptr(v_off), _ptr(merges))
    finally:
        lib.bpe_result_free(res)
    text = v_cps.tobytes().decode("utf-32-le", "surrogatepass")
    bounds = v_off.tolist()
    tokens = [text[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    triples = merges.reshape(-1, 3)
    last = {(int(a), int(b)): k for k, (a, b, _) in enumerate(triples)}  # a later rank wins
    order = sorted(last.values())
    return (
        {tok: i for i, tok in enumerate(tokens)},
        [(tokens[triples[k, 0]], tokens[triples[k, 1]]) for k in order],
    )


class Encoder:
    """Encodes words with a BPE model's vocabulary and merges exactly as ``tokenizers``' BPE
    model does (no dropout, no prefix / suffix, ``fuse_unk`` and ``byte_fallback`` off)."""

    def __init__(self, vocab: Mapping[str, int], merges: Sequence[tuple[str, str]], unk: str):
        if unk not in vocab:
            raise ValueError(f"the unknown token {unk!r} is not in the vocabulary")
        self.unk_id = int(vocab[unk])
        singles = [(t, i) for t, i in vocab.items() if len(t) == 1]
        self._char_cp = np.array([ord(t) for t, _ in singles], dtype=np.uint32)
        self._char_id = np.array([i for _, i in singles], dtype=np.uint32)
        rules = np.zeros((len(merges), 3), dtype=np.uint32)
        for k, (a, b) in enumerate(merges):
            missing = [t for t in (a, b, a + b) if t not in vocab]
            if missing:
                raise ValueError(
                    f"BPE merge {k} ({a!r}, {b!r}): {missing[0]!r} is not in the vocabulary"
                )
            rules[k] = (vocab[a], vocab[b], vocab[a + b])
        self._rules = rules.reshape(-1)

    def encode(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)``: the ids of word ``k`` are ``ids[offsets[k]:offsets[k+1]]``."""
        lib = library()
        cps, offsets = _code_points(words)
        ids = np.zeros(cps.size, dtype=np.int64)
        per_word = np.zeros(len(words), dtype=np.int64)
        total = lib.bpe_encode(
            _ptr(cps), _ptr(offsets), len(words), _ptr(self._char_cp), _ptr(self._char_id),
            self._char_cp.size, _ptr(self._rules), self._rules.size // 3, self.unk_id,
            _ptr(ids), _ptr(per_word),
        )  # fmt: skip
        out = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(per_word, out=out[1:])
        return ids[:total], out
