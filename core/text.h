/*
** text.h — tokenizers, datasets of fixed-length token windows and the
** next-token sampler: what a language model needs on the data side.
**
** A tokenizer turns bytes into 0-based token ids and back:
**   byte-level   vocabulary 256, id = the byte's value; every byte string
**                encodes and every id decodes (decode is the exact inverse).
**   char-level   a vocabulary of Unicode code points, sorted ascending, built
**                from a corpus (or given). Text is read as UTF-8: an invalid
**                byte sequence is one U+FFFD, and a code point outside the
**                vocabulary maps to the id of U+FFFD, which every char-level
**                vocabulary holds (it is added when the corpus lacks it).
**                Decoding writes each id's code point as UTF-8.
**
** A window dataset (eg_dataset_windows) is an eg_dataset whose samples are
** windows of a token stream: sample i starts at token s_i and has x = the T
** tokens s_i..s_i+T-1 and y = the T tokens s_i+1..s_i+T (the next token of
** every position). Batches give x [B, T] and y [B, T] (float32 holding ids).
** The stream is stored once, as uint8 when the vocabulary has at most 256
** ids and uint16 otherwise (up to 65536 ids), plus one int64 start per window.
** Subsets, splits and batches work as for any dataset; the transforms for
** images (permuted, rotated, normalized, noisy) are errors; concatenating two
** window datasets of different streams copies their windows into a new one.
** Such a dataset's number of classes is the vocabulary size, and its class
** counts count the target tokens (y) of every window.
*/
#ifndef EG_TEXT_H
#define EG_TEXT_H

#include "data.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eg_tokenizer eg_tokenizer;

enum { EG_TOKENIZER_BYTE = 0, EG_TOKENIZER_CHAR = 1 };
/* The id of unknown characters in a char-level vocabulary is the id of this code point. */
#define EG_TOKEN_REPLACEMENT 0xFFFD
/* The largest vocabulary a window dataset stores (uint16 ids). */
#define EG_TEXT_MAX_VOCAB 65536

/* A byte-level tokenizer (vocabulary 256). */
EG_API int eg_tokenizer_byte(eg_tokenizer **out);
/* A char-level tokenizer whose vocabulary is every code point of the UTF-8
** text s[0..n-1] plus U+FFFD, sorted. */
EG_API int eg_tokenizer_char_from_text(eg_tokenizer **out, const char *s, size_t n);
/* A char-level tokenizer from its vocabulary: cps[0..n-1] ascending, distinct,
** valid code points (not surrogates) holding U+FFFD; EG_EINVAL otherwise. */
EG_API int eg_tokenizer_char(eg_tokenizer **out, const int32_t *cps, int64_t n);
EG_API void eg_tokenizer_free(eg_tokenizer *tk); /* accepts NULL */
EG_API int eg_tokenizer_kind(const eg_tokenizer *tk);
EG_API int64_t eg_tokenizer_vocab(const eg_tokenizer *tk);
/* The code point of id (char-level) or the byte (byte-level); -1 out of range. */
EG_API int32_t eg_tokenizer_symbol(const eg_tokenizer *tk, int64_t id);

/* Encodes s[0..n-1] into ids out[0..*count-1]; out must hold n entries (a
** token is at least one byte). Never fails for valid arguments. */
EG_API void eg_tokenizer_encode(const eg_tokenizer *tk, const char *s, size_t n, int32_t *out, int64_t *count);
/* Decodes ids (float32 holding integral ids, n of them, stride 1) into buf,
** which must hold 4 * n bytes; *len gets the byte count. An id that is not
** an integer in [0, vocab) is EG_ERANGE naming its position. */
EG_API int eg_tokenizer_decode(const eg_tokenizer *tk, const float *ids, int64_t n, char *buf, size_t *len);

/* A window dataset over tokens[0..ntok-1] (ids < vocab <= EG_TEXT_MAX_VOCAB,
** copied): windows of T tokens (+1 for the targets) starting every `stride`
** tokens inside each part. The stream is cut into blocks of `block` tokens
** (block <= 0: one block); the last round(holdout * block length) tokens of
** each block form the held-out part, the rest the training part, and no
** window crosses a part's end, so no held-out token is ever in a training
** window (x or y). *train gets the training windows and *held the held-out
** ones (both may be empty; *held is empty when holdout == 0). */
EG_API int eg_dataset_windows(eg_dataset **train, eg_dataset **held, const int32_t *tokens, int64_t ntok,
                              int64_t vocab, int64_t T, int64_t stride, double holdout, int64_t block);
/* T for a window dataset, 0 for any other dataset. */
EG_API int64_t eg_dataset_window(const eg_dataset *ds);
/* The number of tokens in the stream a window dataset's windows are cut from. */
EG_API int64_t eg_dataset_stream_tokens(const eg_dataset *ds);

/* Samples one id from logits[0..V-1] (stride 1): softmax(logits / temperature)
** restricted to the top_k largest logits (top_k <= 0 or >= V: all). A
** temperature of 0 takes the argmax (the lowest id among ties). NaN logits
** or a negative temperature are EG_EINVAL. */
EG_API int eg_sample_logits(const float *logits, int64_t V, double temperature, int64_t top_k, eg_rng *rng,
                            int64_t *id);

#ifdef __cplusplus
}
#endif

#endif
