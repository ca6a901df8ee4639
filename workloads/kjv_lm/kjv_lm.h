/*
 * kjv_lm.h - the kjv_lm workload's descriptor and the two text functions its tests drive
 * directly: the normalisation of `bible` output into the cache file, and the parse of that file
 * into the per-split token streams (the split by book).
 *
 * Not here: the options and model (documented at the top of kjv_lm.c).
 */
#ifndef TP_WORKLOADS_KJV_LM_H
#define TP_WORKLOADS_KJV_LM_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn/workload.h"

extern const tp_workload_desc tp_kjv_lm_desc;

/* Books of the King James Bible, in canonical order (Genesis = 0 .. Revelation = 65). */
#define TP_KJV_BOOKS 66

/* The split a book (0 .. 65) belongs to: TP_SPLIT_VALIDATION for Ruth, Ecclesiastes, Joel,
 * Galatians and 1 John; TP_SPLIT_TEST for Esther, Song of Solomon, Amos and Ephesians;
 * TP_SPLIT_TRAIN for the other 57. */
tp_split tp_kjv_book_split(uint32_t book);

/* Normalise the output of `bible "Gen1:1-Rev22:21"` (raw, len bytes: a blank line, a heading
 * "Book chapter", a blank line, then verses "  N text" wrapped onto unindented continuation
 * lines) into the text of the cache file: verse numbers and headings dropped, each verse on one
 * line with its wrapped lines joined and runs of whitespace made one space, case and punctuation
 * kept; books (a change of the heading's book name) separated by one empty line. *out is
 * malloc'd (the caller frees it), *out_len its length; *books and *verses are counted. TP_EDATA
 * with the line number when the input does not have that shape. */
int tp_kjv_normalize(const char *raw, size_t len, char **out, size_t *out_len, uint32_t *books,
                     uint64_t *verses, char *err, size_t errlen);

/* The cache file's text cut into splits. */
typedef struct tp_kjv_corpus {
    uint32_t vocab_size; /* distinct bytes of the whole text */
    uint8_t vocab[256];  /* the byte of each token id, ascending */
    uint8_t *ids[3];     /* token ids of each tp_split: its books in order, each verse line
                          * with its '\n', the empty lines between books left out */
    uint64_t len[3];     /* tokens in ids[s] */
    uint32_t books[3];   /* books in each split */
} tp_kjv_corpus;

/* Parse the cache text (text, len bytes) into c: exactly TP_KJV_BOOKS books separated by single
 * empty lines, every line ended by '\n'. TP_EDATA with a message otherwise (the caller adds the
 * file name). tp_kjv_corpus_free releases it (a zeroed corpus is fine). */
int tp_kjv_corpus_parse(const char *text, size_t len, tp_kjv_corpus *c, char *err, size_t errlen);
void tp_kjv_corpus_free(tp_kjv_corpus *c);

#endif /* TP_WORKLOADS_KJV_LM_H */
