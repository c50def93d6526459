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
from dataclasses import dataclass

import numpy as np

from lstmkit.kernels.compiled import CompiledKernelError, build_shared, load_library

CXXFLAGS = ("-O2", "-std=c++17", "-fPIC")
METASPACE = "\u2581"

SOURCE = r"""
#include <algorithm>
#include <cstdint>
#include <cstring>
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
  // the words as training left them (Trainer::buf / at), which of them lost a character
  // outside the alphabet, and whether a merge's result was already a token
  std::vector<uint32_t> buf;
  std::vector<int64_t> at;
  std::vector<uint8_t> dropped;
  bool reused = false;
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
    t.out->dropped.push_back(t.buf.size() - t.at[w] - 3 != (size_t)(off[w + 1] - off[w]));
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
    size_t before = t.out->vocab.size();
    uint32_t r = t.add(t.out->vocab[top.a] + t.out->vocab[top.b]);
    if (t.out->vocab.size() == before) t.out->reused = true;
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
  t.out->buf = std::move(t.buf);
  t.out->at = std::move(t.at);
  return t.out;
}

void bpe_result_sizes(void* res, int64_t* sizes) {
  Result* r = (Result*)res;
  int64_t chars = 0;
  for (auto& s : r->vocab) chars += (int64_t)s.size();
  sizes[0] = (int64_t)r->vocab.size();
  sizes[1] = chars;
  sizes[2] = (int64_t)r->merges.size() / 3;
  int64_t symbols = 0;
  for (int64_t a : r->at) symbols += r->buf[a];
  sizes[3] = symbols;
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

// the words' symbols after training (n_symbols: their total, from bpe_result_sizes' sizes[3]),
// the number of each word's symbols, whether a word lost a character outside the alphabet;
// returns whether a merge's result was already a token
int64_t bpe_result_words(void* res, int64_t* symbols, int64_t* per_word, uint8_t* dropped) {
  Result* r = (Result*)res;
  int64_t k = 0;
  for (size_t w = 0; w < r->at.size(); ++w) {
    const uint32_t* head = r->buf.data() + r->at[w];
    for (uint32_t j = 0; j < head[0]; ++j) symbols[k++] = head[3 + j];
    per_word[w] = head[0];
    dropped[w] = r->dropped[w];
  }
  return r->reused ? 1 : 0;
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
  // pair -> (rank, id): open addressing, a later rank of the same pair wins
  struct Rule { uint64_t key; uint32_t rank, id; };
  size_t cap = 16;
  while (cap < 4 * (size_t)n_merges) cap *= 2;
  const size_t mask = cap - 1;
  std::vector<Rule> table(cap, Rule{~0ULL, 0, 0});
  auto slot = [&](uint64_t key) {
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 40) & mask;
    while (table[i].key != ~0ULL && table[i].key != key) i = (i + 1) & mask;
    return i;
  };
  for (int64_t k = 0; k < n_merges; ++k) {
    uint64_t key = pair_key(merges[3 * k], merges[3 * k + 1]);
    table[slot(key)] = Rule{key, (uint32_t)k, merges[3 * k + 2]};
  }
  auto find = [&](uint64_t key) -> const Rule* {
    const Rule& r = table[slot(key)];
    return r.key == key ? &r : nullptr;
  };
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
    const Rule* r = find(key);
    if (r == nullptr) return;
    heap.push_back(Item{r->rank, pos, r->id});
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
      const Rule* rule = find(pair_key(c[p], c[q]));
      if (rule == nullptr || rule->id != top.id) continue;
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

// Metaspace words (see metaspace_words in Python): every space of `data` starts a word that
// runs to the next space; text i is the next text_bytes[i] bytes (a non-empty text starts with
// a space). codes[k]: the number of word k's distinct word (in order of first appearance);
// per_text[i]: the words of text i; blob: the distinct words' bytes in number order, each with
// its space; *blob_len: its length. Returns the number of distinct words.
int64_t metaspace_words(const uint8_t* data, const int64_t* text_bytes, int64_t n_texts,
                        int64_t* codes, int64_t* per_text, uint8_t* blob, int64_t* blob_len) {
  // a word of up to 7 bytes is its own 64-bit key (bytes, then the length in the top byte): a
  // 16-byte slot, no byte compare. A longer word: an 8-byte slot (32 bits of its hash, its
  // number), checked against the bytes of the distinct words, which are kept together in
  // `blob` (the tables stay small enough for the CPU caches: most lookups hit)
  struct Short { uint64_t key; int64_t code; };
  struct Long { uint32_t tag; int32_t code; };
  const uint64_t NONE = ~0ULL;  // a length byte of 0xff never occurs
  std::vector<Short> shorts(1 << 16, Short{NONE, -1});
  std::vector<Long> longs(1 << 14, Long{0, -1});
  size_t s_used = 0, l_used = 0;
  std::vector<int64_t> at{0};  // where distinct word d's bytes are in blob: at[d]..at[d + 1]
  auto new_code = [&](int64_t p, int64_t len) {
    memcpy(blob + at.back(), data + p, (size_t)len);
    at.push_back(at.back() + len);
    return (int64_t)at.size() - 2;
  };
  auto hash_bytes = [](const uint8_t* w, int64_t n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    for (int64_t j = 0; j < n; j += 8) {
      uint64_t x = 0;
      memcpy(&x, w + j, (size_t)std::min<int64_t>(8, n - j));
      h = (h ^ x) * 0xC2B2AE3D27D4EB4FULL;
      h ^= h >> 29;
    }
    return h;
  };
  auto short_slot = [](const std::vector<Short>& t, uint64_t key) {
    size_t mask = t.size() - 1, i = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
    while (t[i].key != ~0ULL && t[i].key != key) i = (i + 1) & mask;
    return i;
  };
  auto long_slot = [&](const std::vector<Long>& t, uint64_t h, const uint8_t* w, int64_t len) {
    size_t mask = t.size() - 1, i = (size_t)h & mask;
    uint32_t tag = (uint32_t)(h >> 32);
    while (t[i].code >= 0 &&
           !(t[i].tag == tag && at[t[i].code + 1] - at[t[i].code] == len &&
             memcmp(blob + at[t[i].code], w, (size_t)len) == 0))
      i = (i + 1) & mask;
    return i;
  };
  int64_t k = 0, pos = 0;
  for (int64_t t = 0; t < n_texts; ++t) {
    int64_t end = pos + text_bytes[t], count = 0;
    for (int64_t p = pos; p < end;) {
      const uint8_t* hit =
          p + 1 < end ? (const uint8_t*)memchr(data + p + 1, ' ', end - p - 1) : nullptr;
      int64_t q = hit ? hit - data : end, len = q - p, code;
      if (len <= 7) {
        uint64_t key = (uint64_t)len << 56;
        for (int64_t j = 0; j < len; ++j) key |= (uint64_t)data[p + j] << (8 * j);
        size_t i = short_slot(shorts, key);
        if (shorts[i].key == NONE) {
          shorts[i] = Short{key, new_code(p, len)};
          if (2 * ++s_used > shorts.size()) {
            std::vector<Short> bigger(2 * shorts.size(), Short{NONE, -1});
            for (const Short& e : shorts)
              if (e.key != NONE) bigger[short_slot(bigger, e.key)] = e;
            shorts.swap(bigger);
            i = short_slot(shorts, key);
          }
        }
        code = shorts[i].code;
      } else {
        uint64_t h = hash_bytes(data + p, len);
        size_t i = long_slot(longs, h, data + p, len);
        if (longs[i].code < 0) {
          longs[i] = Long{(uint32_t)(h >> 32), (int32_t)new_code(p, len)};
          if (2 * ++l_used > longs.size()) {
            std::vector<Long> bigger(2 * longs.size(), Long{0, -1});
            for (const Long& e : longs) {
              if (e.code < 0) continue;
              const uint8_t* w = blob + at[e.code];
              int64_t n = at[e.code + 1] - at[e.code];
              bigger[long_slot(bigger, hash_bytes(w, n), w, n)] = e;
            }
            longs.swap(bigger);
            i = long_slot(longs, h, data + p, len);
          }
        }
        code = longs[i].code;
      }
      codes[k++] = code;
      ++count;
      p = q;
    }
    per_text[t] = count;
    pos = end;
  }
  *blob_len = at.back();
  return (int64_t)at.size() - 1;
}

// the ids of every word, gathered from those of its distinct word (ids[offsets[c]..offsets[c+1])
// for code c); ends[t]: where the ids of text t end (per_text[t] words). With out = NULL only
// counts. Returns the number of ids.
int64_t gather_ids(const int64_t* codes, const int64_t* per_text, int64_t n_texts,
                   const int64_t* ids, const int64_t* offsets, int64_t* out, int64_t* ends) {
  int64_t k = 0, o = 0;
  for (int64_t t = 0; t < n_texts; ++t) {
    for (int64_t e = k + per_text[t]; k < e; ++k) {
      int64_t a = offsets[codes[k]], b = offsets[codes[k] + 1];
      if (out)
        for (int64_t j = a; j < b; ++j) out[o + j - a] = ids[j];
      o += b - a;
    }
    if (ends) ends[t] = o;
  }
  return o;
}

}  // extern "C"
"""


@functools.cache
def library() -> ctypes.CDLL:
    """The built and loaded BPE library (built on the first call of the process, then reused)."""
    lib = load_library(
        build_shared("bpe", SOURCE, compiler_env="CXX", compiler="g++", flags=CXXFLAGS)
    )
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bpe_train.restype = p
    lib.bpe_train.argtypes = [p, p, p, i64, p, p, i64, i64, i64, i64]
    lib.bpe_result_sizes.argtypes = [p, p]
    lib.bpe_result_copy.argtypes = [p, p, p, p]
    lib.bpe_result_free.argtypes = [p]
    lib.bpe_result_words.restype = i64
    lib.bpe_result_words.argtypes = [p, p, p, p]
    lib.bpe_encode.restype = i64
    lib.bpe_encode.argtypes = [p, p, i64, p, p, i64, p, i64, ctypes.c_uint32, p, p]
    lib.metaspace_words.restype = i64
    lib.metaspace_words.argtypes = [p, p, i64, p, p, p, p]
    lib.gather_ids.restype = i64
    lib.gather_ids.argtypes = [p, p, i64, p, p, p, p]
    return lib


def metaspace_words(
    data: bytes, text_bytes: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The Metaspace words of texts joined in ``data`` (UTF-8; text ``i`` is the next
    ``text_bytes[i]`` bytes, a non-empty one starting with a space): every space starts a word
    that runs to the next space (a space is the word's "▁").

    Returns:
        ``(names, codes, per_text)``: the distinct words (in order of first appearance, each
        starting with "▁"), the number of each word's distinct word, the words of each text.
    """
    lib = library()
    n_words = data.count(b" ")
    buf = np.frombuffer(data, dtype=np.uint8)
    sizes = np.ascontiguousarray(text_bytes, dtype=np.int64)
    if int(sizes.sum()) != buf.size:
        raise ValueError(
            f"metaspace_words: text_bytes sum to {int(sizes.sum())}, data has {buf.size}"
        )
    codes = np.zeros(n_words, dtype=np.int64)
    per_text = np.zeros(sizes.size, dtype=np.int64)
    blob = np.zeros(max(buf.size, 1), dtype=np.uint8)
    blob_len = np.zeros(1, dtype=np.int64)
    lib.metaspace_words(
        _ptr(buf) if buf.size else _ptr(blob), _ptr(sizes), sizes.size, _ptr(codes),
        _ptr(per_text), _ptr(blob), _ptr(blob_len),
    )  # fmt: skip
    if int(per_text.sum()) != n_words:
        raise ValueError("metaspace_words: a non-empty text does not start with a space")
    text = blob[: int(blob_len[0])].tobytes().decode("utf-8")
    names = [METASPACE + w for w in text.split(" ")[1:]]
    return names, codes, per_text


def gather_ids(
    codes: np.ndarray, per_text: np.ndarray, ids: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(flat, ends)``: the ids of every word (word ``k`` is distinct word ``codes[k]``, whose
    ids are ``ids[offsets[c]:offsets[c+1]]``) in order; the ids of text ``t`` (``per_text[t]``
    words) end at ``ends[t]``."""
    lib = library()
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    per_text = np.ascontiguousarray(per_text, dtype=np.int64)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if int(per_text.sum()) != codes.size:
        raise ValueError(f"gather_ids: per_text sums to {int(per_text.sum())}, not {codes.size}")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= offsets.size - 1):
        raise ValueError("gather_ids: a code outside the distinct words")
    args = (_ptr(codes), _ptr(per_text), per_text.size, _ptr(ids), _ptr(offsets))
    ends = np.zeros(per_text.size, dtype=np.int64)
    total = lib.gather_ids(*args, None, _ptr(ends))
    flat = np.zeros(total, dtype=np.int64)
    lib.gather_ids(*args, _ptr(flat) if total else None, None)
    return flat, ends


def _code_points(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(cps, offsets)``: the code points of string ``k`` are ``cps[offsets[k]:offsets[k+1]]``."""
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, strings), np.int64, len(strings)), out=offsets[1:])
    cps = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return np.ascontiguousarray(cps), offsets


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


@dataclass
class Trained:
    """A trained BPE model and the words it was trained on, as training left them.

    Attributes:
        vocab: token -> id.
        merges: the merges in rank order (a pair merged twice is kept at its last rank, as
            the trained ``tokenizers`` model keeps it).
        words: the words trained on.
        ids, offsets: word ``k``'s symbols after the last merge: ``ids[offsets[k]:offsets[k+1]]``.
        exact: per word, whether those are the ids the model encodes the word to: so unless
            a character of the word was left out of the alphabet (the encoder reads it as
            ``[UNK]``), its count was 0 (not trained on) or a merge's result was already a
            token (then a pair can be merged at two ranks; see the module docstring). Training
            merges pair ``k`` everywhere, leftmost first, after pairs ``0..k-1``; encoding merges
            the lowest rank first, leftmost first, and a merge only makes pairs of higher rank
            (their new token did not exist before): the same order.
    """

    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    words: Sequence[str]
    ids: np.ndarray
    offsets: np.ndarray
    exact: np.ndarray

    def word_ids(self, count: int, unk: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)`` of the first ``count`` words as the model encodes them: the
        training ids where :attr:`exact`, the :class:`Encoder`'s for the others."""
        offsets = self.offsets[: count + 1]
        ids = self.ids[: int(offsets[-1])]
        redo = np.flatnonzero(~self.exact[:count])
        if redo.size == 0:
            return ids, offsets
        words = [self.words[i] for i in redo.tolist()]
        new_ids, new_offsets = Encoder(self.vocab, self.merges, unk).encode(words)
        lengths = np.diff(offsets)
        lengths[redo] = np.diff(new_offsets)
        out_offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_offsets[1:])
        out = np.zeros(int(out_offsets[-1]), dtype=np.int64)
        keep = np.ones(count, dtype=bool)
        keep[redo] = False
        same = lengths[keep]
        out[_ranges(out_offsets[:-1][keep], same)] = ids[_ranges(offsets[:-1][keep], same)]
        out[_ranges(out_offsets[:-1][redo], lengths[redo])] = new_ids
        return out, out_offsets


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``starts[i] .. starts[i] + lengths[i] - 1`` of every ``i``, in order."""
    firsts = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - firsts, lengths)


def train(
    words: Sequence[str],
    counts: Sequence[int] | np.ndarray,
    *,
    vocab_size: int,
    min_frequency: int,
    limit_alphabet: int | None,
    special_tokens: Sequence[str],
) -> Trained:
    """Train a BPE model on distinct words and how often each occurs (a word of count 0 is
    left out), as ``tokenizers``' ``BpeTrainer`` with these settings does (see the module
    docstring)."""
    if vocab_size < 0 or min_frequency < 0:
        raise ValueError(
            f"vocab_size and min_frequency must be >= 0: {vocab_size}, {min_frequency}"
        )
    freq = np.asarray(counts, dtype=np.int64).reshape(-1)
    if freq.size != len(words):
        raise ValueError(f"{len(words)} words but {freq.size} counts")
    if freq.size and int(freq.min()) < 0:
        raise ValueError(
            f"a word count is negative: {words[int(freq.argmin())]!r}: {int(freq.min())}"
        )
    kept = np.flatnonzero(freq) if not bool(freq.all()) else None
    used = words if kept is None else [words[i] for i in kept.tolist()]
    lib = library()
    cps, offsets = _code_points(used)
    freq = np.ascontiguousarray(freq if kept is None else freq[kept])
    sp_cps, sp_off = _code_points(list(special_tokens))
    res = lib.bpe_train(
        _ptr(cps), _ptr(offsets), _ptr(freq), len(used), _ptr(sp_cps), _ptr(sp_off),
        len(special_tokens), vocab_size, min_frequency,
        -1 if limit_alphabet is None else limit_alphabet,
    )  # fmt: skip
    if not res:
        raise CompiledKernelError("lstmkit.data.bpe: the BPE trainer returned no result")
    try:
        sizes = np.zeros(4, dtype=np.int64)
        lib.bpe_result_sizes(res, _ptr(sizes))
        n_vocab, n_chars, n_merges, n_symbols = (int(x) for x in sizes)
        v_cps = np.zeros(n_chars, dtype=np.uint32)
        v_off = np.zeros(n_vocab + 1, dtype=np.int64)
        merges = np.zeros(3 * n_merges, dtype=np.uint32)
        lib.bpe_result_copy(res, _ptr(v_cps), _ptr(v_off), _ptr(merges))
        symbols = np.zeros(max(n_symbols, 1), dtype=np.int64)
        per_word = np.zeros(max(len(used), 1), dtype=np.int64)
        dropped = np.zeros(max(len(used), 1), dtype=np.uint8)
        reused = lib.bpe_result_words(res, _ptr(symbols), _ptr(per_word), _ptr(dropped))
    finally:
        lib.bpe_result_free(res)
    text = v_cps.tobytes().decode("utf-32-le", "surrogatepass")
    bounds = v_off.tolist()
    tokens = [text[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    triples = merges.reshape(-1, 3)
    last = {(int(a), int(b)): k for k, (a, b, _) in enumerate(triples)}  # a later rank wins
    order = sorted(last.values())
    lengths = np.zeros(len(words), dtype=np.int64)
    exact = np.zeros(len(words), dtype=bool)
    where = np.arange(len(words)) if kept is None else kept
    lengths[where] = per_word[: len(used)]
    exact[where] = (dropped[: len(used)] == 0) & (reused == 0)
    word_offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(lengths, out=word_offsets[1:])
    trained = Trained(
        {tok: i for i, tok in enumerate(tokens)},
        [(tokens[triples[k, 0]], tokens[triples[k, 1]]) for k in order],
        words,
        symbols[:n_symbols],
        word_offsets,
        exact,
    )
    return trained


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
