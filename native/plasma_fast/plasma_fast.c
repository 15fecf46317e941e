/* plasma_fast: the Plasma operator's per-transaction hot path in C.
 *
 * parse(raw)            -> the 13 fields (owners as 20 raw bytes), signing hash and leaf of a
 *                          canonical transaction,
 *                          or None for anything the pure-Python decoder must look at (it then
 *                          accepts it or names the problem): this never accepts what
 *                          plasma_core.wire refuses, and returns the same values.
 * recover(hash, sig)    -> 20-byte signer, or None where wire's checks or the curve refuse.
 * keccak(data)          -> keccak-256 (the hash both of the above use; tested against pysha3).
 * recover_many(hashes, sigs) -> list of 20-byte signers / None, computed without the GIL.
 * Recovery(threads)     -> a batch recovered by its own C threads, which never take the GIL:
 *                          `add` queues signatures, `signer(i)` waits for the i-th one, so the
 *                          caller decodes and applies while the other cores recover.
 *
 * The curve arithmetic is libsecp256k1's: the functions coincurve (a pinned dependency)
 * bundles, whose addresses `bind` receives from coincurve's cffi module, so nothing else is
 * linked and both paths run the very same library.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ---- keccak-256 (the original padding, as Ethereum uses it) ---------------------------- */

static const uint64_t RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};
/* rho rotations and pi lane order, walked along pi's single cycle (lane 1 first) */
static const int ROTC[24] = {1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44};
static const int PILN[24] = {10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1};

#define ROL(x, n) (((x) << (n)) | ((x) >> (64 - (n))))

static void keccak_f(uint64_t st[25]) {
    uint64_t bc[5], t;
    for (int round = 0; round < 24; round++) {
        for (int i = 0; i < 5; i++) bc[i] = st[i] ^ st[i + 5] ^ st[i + 10] ^ st[i + 15] ^ st[i + 20];
        for (int i = 0; i < 5; i++) {
            t = bc[(i + 4) % 5] ^ ROL(bc[(i + 1) % 5], 1);
            for (int j = 0; j < 25; j += 5) st[j + i] ^= t;
        }
        t = st[1];
        for (int i = 0; i < 24; i++) {
            int j = PILN[i];
            bc[0] = st[j];
            st[j] = ROL(t, ROTC[i]);
            t = bc[0];
        }
        for (int j = 0; j < 25; j += 5) {
            for (int i = 0; i < 5; i++) bc[i] = st[j + i];
            for (int i = 0; i < 5; i++) st[j + i] ^= (~bc[(i + 1) % 5]) & bc[(i + 2) % 5];
        }
        st[0] ^= RC[round];
    }
}

typedef struct { uint64_t a[25]; unsigned char buf[136]; size_t used; } keccak_ctx;

static void keccak_init(keccak_ctx *k) { memset(k, 0, sizeof *k); }

static void keccak_absorb_block(keccak_ctx *k, const unsigned char *block) {
    for (int i = 0; i < 17; i++) {
        uint64_t lane = 0;
        for (int j = 7; j >= 0; j--) lane = (lane << 8) | block[8 * i + j];
        k->a[i] ^= lane;
    }
    keccak_f(k->a);
}

static void keccak_update(keccak_ctx *k, const unsigned char *data, size_t len) {
    while (len) {
        size_t take = 136 - k->used;
        if (take > len) take = len;
        memcpy(k->buf + k->used, data, take);
        k->used += take, data += take, len -= take;
        if (k->used == 136) { keccak_absorb_block(k, k->buf); k->used = 0; }
    }
}

static void keccak_final(keccak_ctx *k, unsigned char out[32]) {
    memset(k->buf + k->used, 0, 136 - k->used);
    k->buf[k->used] ^= 0x01;
    k->buf[135] ^= 0x80;
    keccak_absorb_block(k, k->buf);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) out[8 * i + j] = (unsigned char)(k->a[i] >> (8 * j));
}

static void keccak256(const unsigned char *data, size_t len, unsigned char out[32]) {
    keccak_ctx k;
    keccak_init(&k);
    keccak_update(&k, data, len);
    keccak_final(&k, out);
}

/* ---- libsecp256k1, through coincurve's copy ----------------------------------------- */

typedef struct { unsigned char data[65]; } rsig_t;   /* secp256k1_ecdsa_recoverable_signature */
typedef struct { unsigned char data[64]; } pubkey_t; /* secp256k1_pubkey */
typedef int (*parse_compact_fn)(const void *, rsig_t *, const unsigned char *, int);
typedef int (*recover_fn)(const void *, pubkey_t *, const rsig_t *, const unsigned char *);
typedef int (*serialize_fn)(const void *, unsigned char *, size_t *, const pubkey_t *, unsigned int);

static const void *ctx;
static parse_compact_fn parse_compact;
static recover_fn ecdsa_recover;
static serialize_fn pubkey_serialize;
static unsigned int uncompressed_flag;

/* secp256k1 order n and n/2, big-endian */
static const unsigned char N[32] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41};
static const unsigned char HALF_N[32] = {
    0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0};
static const unsigned char ZERO32[32] = {0};

/* 1 and the signer in out[20] when wire.recover_hash_signer would return one; 0 otherwise. */
static int recover_one(const unsigned char *hash, const unsigned char *sig, unsigned char out[20]) {
    unsigned char v = sig[64];
    if (v != 27 && v != 28) return 0;
    if (memcmp(sig, ZERO32, 32) == 0 || memcmp(sig, N, 32) >= 0) return 0;           /* 0 < r < n */
    if (memcmp(sig + 32, ZERO32, 32) == 0 || memcmp(sig + 32, HALF_N, 32) > 0) return 0; /* 0 < s <= n/2 */
    rsig_t rsig;
    pubkey_t pub;
    unsigned char serialized[65];
    size_t length = 65;
    if (!parse_compact(ctx, &rsig, sig, v - 27)) return 0;
    if (!ecdsa_recover(ctx, &pub, &rsig, hash)) return 0;
    pubkey_serialize(ctx, serialized, &length, &pub, uncompressed_flag);
    unsigned char digest[32];
    keccak256(serialized + 1, 64, digest);
    memcpy(out, digest + 12, 20);
    return 1;
}

static PyObject *py_bind(PyObject *self, PyObject *args) {
    unsigned long long c, p, r, s;
    unsigned int flag;
    if (!PyArg_ParseTuple(args, "KKKKI", &c, &p, &r, &s, &flag)) return NULL;
    ctx = (const void *)(uintptr_t)c;
    parse_compact = (parse_compact_fn)(uintptr_t)p;
    ecdsa_recover = (recover_fn)(uintptr_t)r;
    pubkey_serialize = (serialize_fn)(uintptr_t)s;
    uncompressed_flag = flag;
    Py_RETURN_NONE;
}

static int bound(void) {
    if (ctx == NULL) { PyErr_SetString(PyExc_RuntimeError, "plasma_fast.bind was not called"); return 0; }
    return 1;
}

static PyObject *py_recover(PyObject *self, PyObject *args) {
    Py_buffer hash, sig;
    if (!bound() || !PyArg_ParseTuple(args, "y*y*", &hash, &sig)) return NULL;
    unsigned char out[20];
    int ok = hash.len == 32 && sig.len == 65 && recover_one(hash.buf, sig.buf, out);
    PyBuffer_Release(&hash);
    PyBuffer_Release(&sig);
    if (!ok) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)out, 20);
}

/* recover_many(hashes, sigs): hashes = n * 32 bytes, sigs = n * 65 bytes (a 65-byte zero
 * signature, as for an unused input, gives None like any refused one). */
static PyObject *py_recover_many(PyObject *self, PyObject *args) {
    Py_buffer hashes, sigs;
    if (!bound() || !PyArg_ParseTuple(args, "y*y*", &hashes, &sigs)) return NULL;
    Py_ssize_t n = hashes.len / 32;
    if (hashes.len % 32 || sigs.len != n * 65) {
        PyBuffer_Release(&hashes);
        PyBuffer_Release(&sigs);
        PyErr_SetString(PyExc_ValueError, "recover_many takes n 32-byte hashes and n 65-byte signatures");
        return NULL;
    }
    unsigned char *out = PyMem_RawMalloc(n * 21 + 1);
    if (out == NULL) { PyBuffer_Release(&hashes); PyBuffer_Release(&sigs); return PyErr_NoMemory(); }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        out[21 * i] = (unsigned char)recover_one((unsigned char *)hashes.buf + 32 * i,
                                                 (unsigned char *)sigs.buf + 65 * i, out + 21 * i + 1);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&sigs);
    PyObject *list = PyList_New(n);
    for (Py_ssize_t i = 0; list && i < n; i++) {
        PyObject *item = out[21 * i] ? PyBytes_FromStringAndSize((const char *)out + 21 * i + 1, 20) : Py_NewRef(Py_None);
        if (item == NULL) { Py_CLEAR(list); break; }
        PyList_SET_ITEM(list, i, item);
    }
    PyMem_RawFree(out);
    return list;
}


/* ---- Recovery: a batch recovered on C threads ------------------------------------- */

#define BLOCK 16       /* signatures a thread takes at a time; what a waiting caller waits for */
#define MAX_THREADS 64

typedef struct {
    unsigned char *hashes, *sigs, *out; /* out: 21 bytes an item (ok flag, signer) */
    Py_ssize_t start, n, blocks;
    unsigned char *block_done;
} segment_t;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    segment_t *segments;
    Py_ssize_t count, capacity, total;
    Py_ssize_t next_segment, next_block; /* the next block a thread takes */
    Py_ssize_t hint;                     /* the segment `signer` looked in last */
    int closing, nthreads;
    pthread_t threads[MAX_THREADS];
} Recovery;

static void *recovery_worker(void *arg) {
    Recovery *job = arg;
    pthread_mutex_lock(&job->mu);
    for (;;) {
        while (!job->closing && job->next_segment == job->count) pthread_cond_wait(&job->work, &job->mu);
        if (job->closing) break;
        segment_t *seg = &job->segments[job->next_segment];
        Py_ssize_t block = job->next_block++;
        if (job->next_block == seg->blocks) job->next_segment++, job->next_block = 0;
        /* A segment's buffers never move once added (only the array of segments grows). */
        unsigned char *hashes = seg->hashes, *sigs = seg->sigs, *out = seg->out, *flag = seg->block_done + block;
        Py_ssize_t first = block * BLOCK, last = first + BLOCK < seg->n ? first + BLOCK : seg->n;
        pthread_mutex_unlock(&job->mu);
        for (Py_ssize_t i = first; i < last; i++)
            out[21 * i] = (unsigned char)recover_one(hashes + 32 * i, sigs + 65 * i, out + 21 * i + 1);
        pthread_mutex_lock(&job->mu);
        *flag = 1;
        pthread_cond_broadcast(&job->done);
    }
    pthread_mutex_unlock(&job->mu);
    return NULL;
}

static void recovery_stop(Recovery *job) {
    if (job->nthreads == 0) return;
    pthread_mutex_lock(&job->mu);
    job->closing = 1;
    pthread_cond_broadcast(&job->work);
    pthread_cond_broadcast(&job->done);
    pthread_mutex_unlock(&job->mu);
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < job->nthreads; t++) pthread_join(job->threads[t], NULL);
    Py_END_ALLOW_THREADS
    job->nthreads = 0;
}

static void recovery_dealloc(Recovery *job) {
    recovery_stop(job);
    for (Py_ssize_t i = 0; i < job->count; i++) {
        PyMem_RawFree(job->segments[i].hashes);
        PyMem_RawFree(job->segments[i].sigs);
        PyMem_RawFree(job->segments[i].out);
        PyMem_RawFree(job->segments[i].block_done);
    }
    PyMem_RawFree(job->segments);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->work);
    pthread_cond_destroy(&job->done);
    Py_TYPE(job)->tp_free((PyObject *)job);
}

static PyObject *recovery_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    int threads;
    if (!bound() || !PyArg_ParseTuple(args, "i", &threads)) return NULL;
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_SetString(PyExc_ValueError, "Recovery takes 1 to 64 threads");
        return NULL;
    }
    Recovery *job = (Recovery *)type->tp_alloc(type, 0);
    if (job == NULL) return NULL;
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->work, NULL);
    pthread_cond_init(&job->done, NULL);
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&job->threads[t], NULL, recovery_worker, job) != 0) {
            Py_DECREF(job);
            PyErr_SetString(PyExc_OSError, "could not start a recovery thread");
            return NULL;
        }
        job->nthreads = t + 1;
    }
    return (PyObject *)job;
}

/* add(hashes, sigs): queue n more (hash, signature) pairs; they get the next n indexes. */
static PyObject *recovery_add(Recovery *job, PyObject *args) {
    Py_buffer hashes, sigs;
    if (!PyArg_ParseTuple(args, "y*y*", &hashes, &sigs)) return NULL;
    Py_ssize_t n = hashes.len / 32;
    if (hashes.len % 32 || sigs.len != n * 65 || job->closing) {
        PyBuffer_Release(&hashes);
        PyBuffer_Release(&sigs);
        PyErr_SetString(PyExc_ValueError, job->closing ? "Recovery is closed"
                        : "add takes n 32-byte hashes and n 65-byte signatures");
        return NULL;
    }
    segment_t seg = {PyMem_RawMalloc(n * 32 + 1), PyMem_RawMalloc(n * 65 + 1), PyMem_RawMalloc(n * 21 + 1),
                     job->total, n, (n + BLOCK - 1) / BLOCK, PyMem_RawCalloc((n + BLOCK - 1) / BLOCK + 1, 1)};
    if (!seg.hashes || !seg.sigs || !seg.out || !seg.block_done) {
        PyMem_RawFree(seg.hashes), PyMem_RawFree(seg.sigs), PyMem_RawFree(seg.out), PyMem_RawFree(seg.block_done);
        PyBuffer_Release(&hashes);
        PyBuffer_Release(&sigs);
        return PyErr_NoMemory();
    }
    memcpy(seg.hashes, hashes.buf, n * 32);
    memcpy(seg.sigs, sigs.buf, n * 65);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&sigs);
    if (n == 0) {
        PyMem_RawFree(seg.hashes), PyMem_RawFree(seg.sigs), PyMem_RawFree(seg.out), PyMem_RawFree(seg.block_done);
        Py_RETURN_NONE;
    }
    pthread_mutex_lock(&job->mu);
    if (job->count == job->capacity) {
        Py_ssize_t capacity = job->capacity ? 2 * job->capacity : 16;
        segment_t *grown = PyMem_RawRealloc(job->segments, capacity * sizeof(segment_t));
        if (grown == NULL) {
            pthread_mutex_unlock(&job->mu);
            PyMem_RawFree(seg.hashes), PyMem_RawFree(seg.sigs), PyMem_RawFree(seg.out), PyMem_RawFree(seg.block_done);
            return PyErr_NoMemory();
        }
        job->segments = grown, job->capacity = capacity;
    }
    job->segments[job->count++] = seg;
    job->total += n;
    pthread_cond_broadcast(&job->work);
    pthread_mutex_unlock(&job->mu);
    Py_RETURN_NONE;
}

/* signer(i): the i-th queued signature's signer (20 bytes) or None, waiting without the GIL. */
static PyObject *recovery_signer(Recovery *job, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0 || i >= job->total) {
        PyErr_SetString(PyExc_IndexError, "no such signature in this Recovery");
        return NULL;
    }
    Py_ssize_t s = job->hint < job->count ? job->hint : 0;
    if (job->segments[s].start > i) s = 0;
    while (job->segments[s].start + job->segments[s].n <= i) s++;
    job->hint = s;
    /* Only the array of segments can move (add, under the GIL we hold); their buffers never do. */
    Py_ssize_t item = i - job->segments[s].start;
    const unsigned char *out = job->segments[s].out + 21 * item;
    volatile unsigned char *flag = job->segments[s].block_done + item / BLOCK;
    pthread_mutex_lock(&job->mu);
    int ready = *flag, closing = job->closing;
    pthread_mutex_unlock(&job->mu);
    if (!ready && !closing) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&job->mu);
        while (!*flag && !job->closing) pthread_cond_wait(&job->done, &job->mu);
        ready = *flag;
        pthread_mutex_unlock(&job->mu);
        Py_END_ALLOW_THREADS
    }
    if (!ready || !out[0]) Py_RETURN_NONE; /* refused, or closed before it was recovered */
    return PyBytes_FromStringAndSize((const char *)out + 1, 20);
}

static PyObject *recovery_close(Recovery *job, PyObject *unused) {
    recovery_stop(job);
    Py_RETURN_NONE;
}

static PyMethodDef recovery_methods[] = {
    {"add", (PyCFunction)recovery_add, METH_VARARGS, "add(hashes, sigs): queue n (hash, signature) pairs"},
    {"signer", (PyCFunction)recovery_signer, METH_O, "signer(i) -> 20-byte signer or None (waits)"},
    {"close", (PyCFunction)recovery_close, METH_NOARGS, "stop the threads (what is not recovered yet never will be)"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject RecoveryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plasma_fast.Recovery",
    .tp_basicsize = sizeof(Recovery),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Recovery(threads): signer recovery of a batch on C threads",
    .tp_new = recovery_new,
    .tp_dealloc = (destructor)recovery_dealloc,
    .tp_methods = recovery_methods,
};

/* ---- transaction decoding ----------------------------------------------------------- */

static const int IS_SIG[13] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0};
static const int IS_ADDRESS[13] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0};

/* The 13 items of a canonical RLP list of byte strings whose sizes fit the transaction;
 * 0 for anything else (the Python decoder then decides). */
static int split_items(const unsigned char *raw, Py_ssize_t size, Py_ssize_t start[13], Py_ssize_t len[13],
                       Py_ssize_t *header) {
    Py_ssize_t pos, length;
    if (size < 2 || raw[0] < 0xC0) return 0;
    if (raw[0] >= 0xF8) {
        int width = raw[0] - 0xF7;
        if (width > 2 || raw[1] == 0) return 0;
        length = width == 1 ? raw[1] : (raw[1] << 8 | raw[2]);
        pos = 1 + width;
        if (length < 56) return 0;
    } else {
        pos = 1, length = raw[0] - 0xC0;
    }
    if (pos + length != size) return 0;
    *header = pos;
    for (int i = 0; i < 13; i++) {
        if (pos >= size) return 0;
        unsigned char prefix = raw[pos];
        if (prefix < 0x80) {
            start[i] = pos, len[i] = 1, pos += 1;
        } else if (prefix <= 0xB7) {
            Py_ssize_t n = prefix - 0x80;
            if (n == 1 && (pos + 1 >= size || raw[pos + 1] < 0x80)) return 0; /* a low byte encodes itself */
            start[i] = pos + 1, len[i] = n, pos += 1 + n;
        } else if (prefix == 0xB8 && pos + 1 < size && raw[pos + 1] >= 56) {
            start[i] = pos + 2, len[i] = raw[pos + 1], pos += 2 + raw[pos + 1];
        } else {
            return 0;
        }
        if (pos > size) return 0;
        if (IS_SIG[i]) { if (len[i] != 65) return 0; }
        else if (IS_ADDRESS[i]) { if (len[i] != 20) return 0; }
        else if (len[i] > 32 || (len[i] && raw[start[i]] == 0)) return 0;
    }
    return pos == size;
}

static PyObject *uint_of(const unsigned char *data, Py_ssize_t n) {
    if (n <= 8) {
        unsigned long long value = 0;
        for (Py_ssize_t i = 0; i < n; i++) value = (value << 8) | data[i];
        return PyLong_FromUnsignedLongLong(value);
    }
    return _PyLong_FromByteArray(data, (size_t)n, 0, 0);
}

/* parse(raw) -> (13 fields..., signing_hash, leaf) or None; owners are 20 raw bytes (the caller
 * checksums them through a cache: owners repeat). */
static PyObject *py_parse(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) Py_RETURN_NONE;
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg), start[13], len[13], header;
    if (!split_items(raw, size, start, len, &header)) Py_RETURN_NONE;

    /* The signing hash: the received list without its two 67-byte signature items. */
    unsigned char prefix[3], signing[32], leaf[32];
    Py_ssize_t payload = size - header - 2 * 67, prefix_len;
    if (payload <= 55) prefix[0] = (unsigned char)(0xC0 + payload), prefix_len = 1;
    else if (payload < 256) prefix[0] = 0xF8, prefix[1] = (unsigned char)payload, prefix_len = 2;
    else prefix[0] = 0xF9, prefix[1] = (unsigned char)(payload >> 8), prefix[2] = (unsigned char)payload, prefix_len = 3;
    Py_ssize_t sig1_item = start[3] - 2, sig2_item = start[7] - 2;
    keccak_ctx k;
    keccak_init(&k);
    keccak_update(&k, prefix, prefix_len);
    keccak_update(&k, raw + header, sig1_item - header);
    keccak_update(&k, raw + sig1_item + 67, sig2_item - sig1_item - 67);
    keccak_update(&k, raw + sig2_item + 67, size - sig2_item - 67);
    keccak_final(&k, signing);
    keccak256(raw, size, leaf);

    PyObject *out = PyTuple_New(15);
    if (out == NULL) return NULL;
    for (int i = 0; i < 13; i++) {
        PyObject *item;
        if (IS_SIG[i]) item = PyBytes_FromStringAndSize((const char *)raw + start[i], 65);
        else if (IS_ADDRESS[i]) item = PyBytes_FromStringAndSize((const char *)raw + start[i], 20);
        else item = uint_of(raw + start[i], len[i]);
        if (item == NULL) { Py_DECREF(out); return NULL; }
        PyTuple_SET_ITEM(out, i, item);
    }
    PyObject *h = PyBytes_FromStringAndSize((const char *)signing, 32), *l = PyBytes_FromStringAndSize((const char *)leaf, 32);
    if (h == NULL || l == NULL) { Py_XDECREF(h); Py_XDECREF(l); Py_DECREF(out); return NULL; }
    PyTuple_SET_ITEM(out, 13, h);
    PyTuple_SET_ITEM(out, 14, l);
    return out;
}

static PyObject *py_keccak(PyObject *self, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    unsigned char out[32];
    keccak256(data.buf, data.len, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyMethodDef methods[] = {
    {"bind", py_bind, METH_VARARGS, "bind(ctx, parse_compact, recover, serialize, uncompressed_flag): libsecp256k1's addresses"},
    {"parse", py_parse, METH_O, "parse(raw) -> 13 fields + (signing_hash, leaf), or None"},
    {"recover", py_recover, METH_VARARGS, "recover(hash, sig) -> 20-byte signer or None"},
    {"recover_many", py_recover_many, METH_VARARGS, "recover_many(hashes, sigs) -> [20-byte signer or None], without the GIL"},
    {"keccak", py_keccak, METH_O, "keccak-256 of a bytes-like object"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "plasma_fast", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit_plasma_fast(void) {
    if (PyType_Ready(&RecoveryType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&RecoveryType);
    if (PyModule_AddObject(m, "Recovery", (PyObject *)&RecoveryType) < 0) {
        Py_DECREF(&RecoveryType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
