// ctensors native AEAD engine: decrypts CryptoTensors tensors into their destination (a /dev/shm
// region file or a caller's buffer) and encrypts plain tensors into an output file, on a pool of
// threads, with OpenSSL's EVP. Data moves in 256 KiB pieces: read with pread into a per-thread
// buffer (or from a read-only mapping of the file), through the AEAD, then into the caller's buffer,
// or into the destination file with pwrite from a second per-thread buffer (or into a shared mapping
// of it). The defaults (pread, pwrite) measured cheaper than mappings: bench/RESULTS.md.
//
// No libcrypto is linked: the node binary exports OpenSSL's symbols and this module resolves them at
// load time. Built by plugin/native/build.mjs with plain gcc against Node's own headers.
//
// One call = one job: a list of tasks (one tensor each). A task is split into units of work (one v2
// chunk, or a whole v1 tensor, or a slice of a plain copy); the threads take units from a shared
// counter. A unit whose tag does not verify marks its task failed; when every unit is done, the
// destination range of every failed decrypt task is zeroed, so no unauthenticated plaintext stays.
// Key bytes are copied into the job and wiped with OPENSSL_cleanse when the job ends.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum { OP_DECRYPT = 0, OP_ENCRYPT = 1 };
enum { SCHEME_PLAIN = 0, SCHEME_MONOLITHIC = 1, SCHEME_CHUNKED = 2 };
enum { ALG_AES256GCM = 0, ALG_AES128GCM = 1, ALG_CHACHA20POLY1305 = 2 };
// ST_NOSPACE: a write failed with ENOSPC or EDQUOT (a full /dev/shm or disk), told apart from other I/O errors.
enum { ST_OK = 0, ST_AUTH = 1, ST_IO = 2, ST_COUNTER = 3, ST_INTERNAL = 4, ST_NOSPACE = 5 };
enum { DST_BUFFER = 0, DST_MAP = 1, DST_PWRITE = 2 };

#define TASK_FIELDS 9
#define TAG_BYTES 16
#define NONCE_BYTES 12
// Data moves in pieces of PIECE_BYTES (small enough to stay in L2 between the read, the AEAD and the
// write); a plaintext tensor is split into units of SLICE_BYTES so both threads copy it.
#ifndef PIECE_BYTES
#define PIECE_BYTES (256u << 10)
#endif
#define SLICE_BYTES (8u << 20)
#define MAX_THREADS 64

static napi_value layout(napi_env env, napi_callback_info info);  // introspection, at the end of the file

typedef struct {
  uint32_t src;      // index into the job's sources
  uint64_t src_off;  // byte offset in that file
  uint64_t len;
  uint64_t dst_off;  // byte offset in the destination
  uint32_t scheme;
  uint32_t alg;
  uint64_t chunk;    // v2 chunk size
  uint64_t key_off;  // into job->keys
  uint64_t tag_off;  // into job->tags (16 bytes per chunk; one tag for monolithic)
  // the nonce is job->ivs[12 * task index]
  volatile int status;
} task_t;

typedef struct {
  uint32_t task;
  uint64_t index;  // chunk index (chunked) or slice index (plain)
} unit_t;

typedef struct {
  int fd;
  uint8_t* map;
  size_t map_len;
} source_t;

typedef struct {
  int op;
  int dst_kind;
  int dst_fd;
  uint8_t* dst;       // DST_BUFFER: the caller's buffer; DST_MAP: our mapping of dst_fd
  size_t dst_len;
  napi_ref dst_ref;   // keeps a DST_BUFFER alive while the job runs
  source_t* sources;
  uint32_t nsources;
  task_t* tasks;
  uint32_t ntasks;
  unit_t* units;
  uint64_t nunits;
  uint64_t next_unit;  // taken with __atomic_fetch_add
  uint64_t prefetched; // units [0, prefetched) were given to posix_fadvise(WILLNEED)
  uint8_t* keys;
  size_t keys_len;
  uint8_t* ivs;
  uint8_t* tags;      // copy; for OP_ENCRYPT copied back into the caller's buffer when done
  size_t tags_len;
  napi_ref tags_ref;
  int threads;
  int src_pread;      // read sources with pread into a per-thread buffer instead of mapping them
  int populate;       // pre-fault destination pages with MADV_POPULATE_WRITE before writing them (DST_MAP, DST_BUFFER)
  int setup_error;    // errno of a failed mmap, reported as a rejection
  const char* setup_what;
  napi_deferred deferred;
  napi_async_work work;
} job_t;

static const EVP_CIPHER* cipher_of(uint32_t alg) {
  switch (alg) {
    case ALG_AES256GCM: return EVP_aes_256_gcm();
    case ALG_AES128GCM: return EVP_aes_128_gcm();
    case ALG_CHACHA20POLY1305: return EVP_chacha20_poly1305();
    default: return NULL;
  }
}

static int key_len_of(uint32_t alg) { return alg == ALG_AES128GCM ? 16 : 32; }

// nonce_i = base_iv[0..8] || BE32(BE32(base_iv[8..12]) + i), checked (docs/format.md §3.5).
static int chunk_nonce(const uint8_t* base, uint64_t index, uint8_t* out) {
  uint64_t start = ((uint64_t)base[8] << 24) | ((uint64_t)base[9] << 16) | ((uint64_t)base[10] << 8) | base[11];
  uint64_t c = start + index;
  if (c > 0xffffffffull) return -1;
  memcpy(out, base, 8);
  out[8] = (uint8_t)(c >> 24);
  out[9] = (uint8_t)(c >> 16);
  out[10] = (uint8_t)(c >> 8);
  out[11] = (uint8_t)c;
  return 0;
}

static int populate_unsupported;  // set once MADV_POPULATE_* answers EINVAL (kernels before 5.14)
static void populate(uint8_t* p, size_t len, int advice) {
  if (len == 0 || __atomic_load_n(&populate_unsupported, __ATOMIC_RELAXED)) return;
  uintptr_t page = 4096;
  uintptr_t a = (uintptr_t)p & ~(page - 1);
  uintptr_t b = ((uintptr_t)p + len + page - 1) & ~(page - 1);
  // best effort: the access faults the pages in anyway
  if (madvise((void*)a, b - a, advice) != 0 && errno == EINVAL) __atomic_store_n(&populate_unsupported, 1, __ATOMIC_RELAXED);
}

// A buffer destination: before a unit writes its range, fault the range in with one
// MADV_POPULATE_WRITE (each thread for its own units, so in parallel) instead of one page fault per
// 4 KiB page, unless the range's first page is resident already (a reused buffer: populate would
// only walk the page tables again). Measured in bench/RESULTS.md (native-buffer): into a fresh
// buffer 7-11% less CPU, wall 1-14% less; a touched one as before. madvise(MADV_HUGEPAGE) on the
// buffer measured 2-3x slower (2 MiB pages cleared at fault time) and is not used.
static void populate_unit(job_t* job, const task_t* t, uint64_t begin, uint64_t n) {
  if (!job->populate || job->dst_kind != DST_BUFFER || n == 0) return;
  uint8_t* at = job->dst + t->dst_off + begin;
  unsigned char resident = 0;
  if (mincore((void*)((uintptr_t)at & ~(uintptr_t)4095), 1, &resident) == 0 && (resident & 1)) return;
  populate(at, n, MADV_POPULATE_WRITE);
}

static int pread_all(int fd, uint8_t* p, size_t len, uint64_t off) {
  while (len) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return -1;
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

static int pwrite_all(int fd, const uint8_t* p, size_t len, uint64_t off) {
  while (len) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

// The status of a failed write (errno set by pwrite_all).
static int write_status(void) { return errno == ENOSPC || errno == EDQUOT ? ST_NOSPACE : ST_IO; }

// Moves [src_off, src_off+len) of the task's source to dst_off of the destination through the AEAD
// (or as is, when ctx is NULL: a plain copy), in pieces of PIECE_BYTES: the source is read from the
// mapping or with pread into a per-thread buffer; the output goes straight into the destination
// (mapping or buffer) or through a per-thread buffer and pwrite.
static int move_pieces(job_t* job, EVP_CIPHER_CTX* ctx, const task_t* t, uint64_t src_off, uint64_t dst_off, uint64_t len,
                       uint8_t* in_buf, uint8_t* out_buf) {
  const source_t* s = &job->sources[t->src];
  uint64_t done = 0;
  while (done < len) {
    uint64_t n = len - done < PIECE_BYTES ? len - done : PIECE_BYTES;
    const uint8_t* in;
    if (job->src_pread) {
      if (pread_all(s->fd, in_buf, n, src_off + done) != 0) return ST_IO;
      in = in_buf;
    } else {
      in = s->map + src_off + done;
    }
    uint8_t* out = job->dst_kind == DST_PWRITE ? out_buf : job->dst + dst_off + done;
    if (job->populate && job->dst_kind == DST_MAP) populate(out, n, MADV_POPULATE_WRITE);
    if (ctx) {
      int outl = 0;
      if (EVP_CipherUpdate(ctx, out, &outl, in, (int)n) != 1 || (uint64_t)outl != n) return ST_INTERNAL;
    } else if (job->dst_kind != DST_PWRITE) {
      memcpy(out, in, n);
    } else {
      out = (uint8_t*)in;
    }
    if (job->dst_kind == DST_PWRITE && pwrite_all(job->dst_fd, out, n, dst_off + done) != 0) return write_status();
    done += n;
  }
  return ST_OK;
}

// One AEAD message: init with key and nonce, the pieces, then final (decrypt: checks the tag; encrypt: returns it).
static int aead_run(job_t* job, EVP_CIPHER_CTX* ctx, const task_t* t, const uint8_t* key, const uint8_t* nonce,
                    uint64_t src_off, uint64_t dst_off, uint64_t len, uint8_t* tag, uint8_t* in_buf, uint8_t* out_buf) {
  const EVP_CIPHER* c = cipher_of(t->alg);
  int enc = job->op == OP_ENCRYPT;
  if (!c) return ST_INTERNAL;
  if (EVP_CipherInit_ex(ctx, c, NULL, NULL, NULL, enc) != 1) return ST_INTERNAL;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_BYTES, NULL) != 1) return ST_INTERNAL;
  if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1) return ST_INTERNAL;
  if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) != 1) return ST_INTERNAL;
  int st = move_pieces(job, ctx, t, src_off, dst_off, len, in_buf, out_buf);
  if (st != ST_OK) return st;
  uint8_t scratch[32];
  int outl = 0;
  if (EVP_CipherFinal_ex(ctx, scratch, &outl) != 1) return enc ? ST_INTERNAL : ST_AUTH;
  if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, tag) != 1) return ST_INTERNAL;
  return ST_OK;
}

static void unit_range(const job_t* job, uint64_t i, uint64_t* begin, uint64_t* n);

static int run_unit(job_t* job, EVP_CIPHER_CTX* ctx, const unit_t* u, uint8_t* in_buf, uint8_t* out_buf) {
  task_t* t = &job->tasks[u->task];
  uint64_t range_begin, range_len;
  unit_range(job, (uint64_t)(u - job->units), &range_begin, &range_len);
  populate_unit(job, t, range_begin, range_len);
  const uint8_t* key = job->keys + t->key_off;
  const uint8_t* iv = job->ivs + (size_t)NONCE_BYTES * u->task;
  if (t->scheme == SCHEME_PLAIN) {
    uint64_t begin = u->index * SLICE_BYTES;
    uint64_t n = t->len - begin < SLICE_BYTES ? t->len - begin : SLICE_BYTES;
    return move_pieces(job, NULL, t, t->src_off + begin, t->dst_off + begin, n, in_buf, out_buf);
  }
  if (t->scheme == SCHEME_MONOLITHIC) {
    return aead_run(job, ctx, t, key, iv, t->src_off, t->dst_off, t->len, job->tags + t->tag_off, in_buf, out_buf);
  }
  uint8_t nonce[NONCE_BYTES];
  if (chunk_nonce(iv, u->index, nonce) != 0) return ST_COUNTER;
  uint64_t begin = u->index * t->chunk;
  uint64_t n = t->len == 0 ? 0 : (t->len - begin < t->chunk ? t->len - begin : t->chunk);
  return aead_run(job, ctx, t, key, nonce, t->src_off + begin, t->dst_off + begin, n,
                  job->tags + t->tag_off + (size_t)TAG_BYTES * u->index, in_buf, out_buf);
}

// Cold page cache: ask the kernel to start reading the units ahead of the one about to be processed,
// up to READ_AHEAD_BYTES of source, so that disk reads overlap the AEAD work (a no-op when the pages
// are cached). job->prefetched is the highest unit already advised, shared by the threads.
#define READ_AHEAD_BYTES (64ull << 20)
static void unit_range(const job_t* job, uint64_t i, uint64_t* begin, uint64_t* n) {
  const unit_t* u = &job->units[i];
  const task_t* t = &job->tasks[u->task];
  *begin = 0;
  *n = t->len;
  if (t->scheme == SCHEME_PLAIN) {
    *begin = u->index * SLICE_BYTES;
    *n = t->len - *begin < SLICE_BYTES ? t->len - *begin : SLICE_BYTES;
  } else if (t->scheme == SCHEME_CHUNKED && t->len) {
    *begin = u->index * t->chunk;
    *n = t->len - *begin < t->chunk ? t->len - *begin : t->chunk;
  }
}

static void prefetch(job_t* job, uint64_t i) {
  uint64_t ahead = 0;
  uint64_t done = __atomic_load_n(&job->prefetched, __ATOMIC_RELAXED);
  for (uint64_t j = i; j < job->nunits && ahead < READ_AHEAD_BYTES; j++) {
    uint64_t begin, n;
    unit_range(job, j, &begin, &n);
    ahead += n;
    if (j + 1 <= done) continue;  // advised already (prefetched holds index + 1)
    if (!__atomic_compare_exchange_n(&job->prefetched, &done, j + 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      if (j + 1 <= done) continue;  // another thread advised it meanwhile
      j--;                          // retry this unit with the new value
      ahead -= n;
      continue;
    }
    const task_t* t = &job->tasks[job->units[j].task];
    if (n) (void)posix_fadvise(job->sources[t->src].fd, (off_t)(t->src_off + begin), (off_t)n, POSIX_FADV_WILLNEED);
  }
}

static void* worker(void* arg) {
  job_t* job = (job_t*)arg;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  uint8_t* in_buf = job->src_pread ? malloc(PIECE_BYTES) : NULL;
  uint8_t* out_buf = job->dst_kind == DST_PWRITE ? malloc(PIECE_BYTES) : NULL;
  int ok = ctx && (!job->src_pread || in_buf) && (job->dst_kind != DST_PWRITE || out_buf);
  for (;;) {
    uint64_t i = __atomic_fetch_add(&job->next_unit, 1, __ATOMIC_RELAXED);
    if (i >= job->nunits) break;
    const unit_t* u = &job->units[i];
    task_t* t = &job->tasks[u->task];
    if (job->src_pread) prefetch(job, i);
    if (__atomic_load_n(&t->status, __ATOMIC_RELAXED) != ST_OK) continue;  // already failed: skip the rest
    int st = ok ? run_unit(job, ctx, u, in_buf, out_buf) : ST_INTERNAL;
    if (st != ST_OK) __atomic_store_n(&t->status, st, __ATOMIC_RELAXED);
  }
  if (ctx) EVP_CIPHER_CTX_free(ctx);  // wipes the key schedule
  if (in_buf) {
    OPENSSL_cleanse(in_buf, PIECE_BYTES);
    free(in_buf);
  }
  if (out_buf) {
    OPENSSL_cleanse(out_buf, PIECE_BYTES);
    free(out_buf);
  }
  return NULL;
}

static void execute(napi_env env, void* data) {
  (void)env;
  job_t* job = (job_t*)data;
  if (job->setup_error) return;
  for (uint32_t s = 0; s < job->nsources; s++) {
    struct stat st;
    if (fstat(job->sources[s].fd, &st) != 0) {
      job->setup_error = errno;
      job->setup_what = "fstat(source)";
      return;
    }
    job->sources[s].map_len = (size_t)st.st_size;
    (void)posix_fadvise(job->sources[s].fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // larger readahead when the cache is cold
    if (st.st_size == 0 || job->src_pread) continue;
    void* m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, job->sources[s].fd, 0);
    if (m == MAP_FAILED) {
      job->setup_error = errno;
      job->setup_what = "mmap(source)";
      return;
    }
    (void)madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
    job->sources[s].map = m;
  }
  for (uint32_t i = 0; i < job->ntasks; i++) {
    task_t* t = &job->tasks[i];
    if (t->len && t->src_off + t->len > job->sources[t->src].map_len) {
      job->setup_error = ERANGE;
      job->setup_what = "task range beyond the end of its source file";
      return;
    }
  }
  if (job->dst_kind == DST_MAP && job->dst_len) {
    void* m = mmap(NULL, job->dst_len, PROT_READ | PROT_WRITE, MAP_SHARED, job->dst_fd, 0);
    if (m == MAP_FAILED) {
      job->setup_error = errno;
      job->setup_what = "mmap(destination)";
      return;
    }
    job->dst = m;
  }
  int n = job->threads;
  if ((uint64_t)n > job->nunits) n = job->nunits ? (int)job->nunits : 1;
  pthread_t ids[MAX_THREADS];
  int started = 0;
  for (int i = 1; i < n; i++) {
    if (pthread_create(&ids[started], NULL, worker, job) == 0) started++;
  }
  worker(job);
  for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
  if (job->op == OP_DECRYPT) {
    for (uint32_t i = 0; i < job->ntasks; i++) {
      task_t* t = &job->tasks[i];
      if (t->status == ST_OK || t->len == 0) continue;
      if (job->dst) {
        OPENSSL_cleanse(job->dst + t->dst_off, t->len);
      } else if (fallocate(job->dst_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)t->dst_off, (off_t)t->len) != 0) {
        // no hole punching here: overwrite with zeros
        static const uint8_t zeros[65536];
        for (uint64_t o = 0; o < t->len; o += sizeof zeros) {
          uint64_t n = t->len - o < sizeof zeros ? t->len - o : sizeof zeros;
          if (pwrite_all(job->dst_fd, zeros, n, t->dst_off + o) != 0) break;
        }
      }
    }
  }
}

static void job_free(napi_env env, job_t* job) {
  for (uint32_t s = 0; s < job->nsources; s++) {
    if (job->sources && job->sources[s].map) munmap(job->sources[s].map, job->sources[s].map_len);
  }
  if (job->dst_kind == DST_MAP && job->dst) munmap(job->dst, job->dst_len);
  if (job->keys) {
    OPENSSL_cleanse(job->keys, job->keys_len);
    free(job->keys);
  }
  if (job->dst_ref) napi_delete_reference(env, job->dst_ref);
  if (job->tags_ref) napi_delete_reference(env, job->tags_ref);
  free(job->sources);
  free(job->tasks);
  free(job->units);
  free(job->ivs);
  free(job->tags);
  if (job->work) napi_delete_async_work(env, job->work);
  free(job);
}

static void complete(napi_env env, napi_status status, void* data) {
  job_t* job = (job_t*)data;
  if (status != napi_ok || job->setup_error) {
    napi_value err, msg;
    char text[256];
    snprintf(text, sizeof text, "ctensors native: %s failed: %s", job->setup_what ? job->setup_what : "job",
             job->setup_error ? strerror(job->setup_error) : "cancelled");
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, job->deferred, err);
    job_free(env, job);
    return;
  }
  if (job->op == OP_ENCRYPT && job->tags_ref) {
    napi_value tags;
    void* p;
    size_t len;
    if (napi_get_reference_value(env, job->tags_ref, &tags) == napi_ok &&
        napi_get_typedarray_info(env, tags, NULL, &len, &p, NULL, NULL) == napi_ok && len == job->tags_len) {
      memcpy(p, job->tags, len);
    }
  }
  napi_value ab, result;
  void* out;
  napi_create_arraybuffer(env, job->ntasks, &out, &ab);
  for (uint32_t i = 0; i < job->ntasks; i++) ((uint8_t*)out)[i] = (uint8_t)job->tasks[i].status;
  napi_create_typedarray(env, napi_uint8_array, job->ntasks, ab, 0, &result);
  napi_resolve_deferred(env, job->deferred, result);
  job_free(env, job);
}

#define CHECK(call)                                             \
  do {                                                          \
    if ((call) != napi_ok) {                                    \
      napi_throw_error(env, NULL, "ctensors native: " #call);  \
      goto fail;                                                \
    }                                                           \
  } while (0)
#define REQUIRE(cond, text)                  \
  do {                                       \
    if (!(cond)) {                           \
      napi_throw_type_error(env, NULL, text); \
      goto fail;                             \
    }                                        \
  } while (0)

static int typed_bytes(napi_env env, napi_value v, void** data, size_t* len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return -1;
  napi_typedarray_type type;
  size_t n;
  if (napi_get_typedarray_info(env, v, &type, &n, data, NULL, NULL) != napi_ok) return -1;
  size_t width = type == napi_float64_array ? 8 : type == napi_int32_array ? 4 : type == napi_uint8_array ? 1 : 0;
  if (!width) return -1;
  *len = n * width;
  return 0;
}

static uint8_t* dup_bytes(const void* p, size_t len) {
  uint8_t* q = malloc(len ? len : 1);
  if (q && len) memcpy(q, p, len);
  return q;
}

// run(op, sourceFds: Int32Array, dstKind, dst: number (fd) | Uint8Array, dstBytes, tasks: Float64Array,
//     keys: Uint8Array, ivs: Uint8Array, tags: Uint8Array, threads, populate) → Promise<Uint8Array statuses>
static napi_value run(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  napi_value promise = NULL;
  job_t* job = calloc(1, sizeof(job_t));
  if (!job) {
    napi_throw_error(env, NULL, "ctensors native: out of memory");
    return NULL;
  }
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQUIRE(argc == 11, "run() takes 11 arguments");
  int32_t i32;
  CHECK(napi_get_value_int32(env, argv[0], &i32));
  REQUIRE(i32 == OP_DECRYPT || i32 == OP_ENCRYPT, "bad op");
  job->op = i32;
  void* p;
  size_t len;
  REQUIRE(typed_bytes(env, argv[1], &p, &len) == 0 && len % 4 == 0, "sourceFds must be an Int32Array");
  job->nsources = (uint32_t)(len / 4);
  job->sources = calloc(job->nsources ? job->nsources : 1, sizeof(source_t));
  for (uint32_t s = 0; s < job->nsources; s++) job->sources[s].fd = ((int32_t*)p)[s];
  CHECK(napi_get_value_int32(env, argv[2], &i32));
  REQUIRE(i32 == DST_BUFFER || i32 == DST_MAP || i32 == DST_PWRITE, "bad destination kind");
  job->dst_kind = i32;
  double d;
  CHECK(napi_get_value_double(env, argv[4], &d));
  REQUIRE(d >= 0 && d <= 9007199254740991.0, "bad destination size");
  job->dst_len = (size_t)d;
  if (job->dst_kind == DST_BUFFER) {
    REQUIRE(typed_bytes(env, argv[3], &p, &len) == 0, "destination must be a Uint8Array");
    job->dst = p;
    job->dst_len = len;
    CHECK(napi_create_reference(env, argv[3], 1, &job->dst_ref));
  } else {
    CHECK(napi_get_value_int32(env, argv[3], &i32));
    job->dst_fd = i32;
  }
  REQUIRE(typed_bytes(env, argv[5], &p, &len) == 0 && len % (8 * TASK_FIELDS) == 0, "tasks must be a Float64Array");
  job->ntasks = (uint32_t)(len / (8 * TASK_FIELDS));
  job->tasks = calloc(job->ntasks ? job->ntasks : 1, sizeof(task_t));
  const double* f = p;
  void *kp, *ip, *tp;
  size_t klen, ilen, tlen;
  REQUIRE(typed_bytes(env, argv[6], &kp, &klen) == 0, "keys must be a Uint8Array");
  REQUIRE(typed_bytes(env, argv[7], &ip, &ilen) == 0 && ilen == (size_t)NONCE_BYTES * job->ntasks, "ivs must hold 12 bytes per task");
  REQUIRE(typed_bytes(env, argv[8], &tp, &tlen) == 0, "tags must be a Uint8Array");
  uint64_t nunits = 0;
  for (uint32_t i = 0; i < job->ntasks; i++) {
    const double* r = f + (size_t)i * TASK_FIELDS;
    task_t* t = &job->tasks[i];
    t->src = (uint32_t)r[0];
    t->src_off = (uint64_t)r[1];
    t->len = (uint64_t)r[2];
    t->dst_off = (uint64_t)r[3];
    t->scheme = (uint32_t)r[4];
    t->alg = (uint32_t)r[5];
    t->chunk = (uint64_t)r[6];
    t->key_off = (uint64_t)r[7];
    t->tag_off = (uint64_t)r[8];
    REQUIRE(t->src < job->nsources, "task source index out of range");
    REQUIRE(t->scheme <= SCHEME_CHUNKED, "bad scheme");
    REQUIRE((job->dst_kind == DST_PWRITE && job->dst_len == 0) || t->dst_off + t->len <= job->dst_len, "task destination beyond the destination");
    if (t->scheme == SCHEME_PLAIN) {
      nunits += (t->len + SLICE_BYTES - 1) / SLICE_BYTES;
      continue;
    }
    REQUIRE(cipher_of(t->alg) != NULL, "bad algorithm");
    REQUIRE(t->key_off + (uint64_t)key_len_of(t->alg) <= klen, "task key beyond keys");
    if (t->scheme == SCHEME_MONOLITHIC) {
      REQUIRE(t->tag_off + TAG_BYTES <= tlen, "task tag beyond tags");
      nunits += 1;
    } else {
      REQUIRE(t->chunk > 0, "chunk size must be positive");
      uint64_t chunks = t->len == 0 ? 1 : (t->len + t->chunk - 1) / t->chunk;
      REQUIRE(t->tag_off + TAG_BYTES * chunks <= tlen, "task tags beyond tags");
      nunits += chunks;
      const uint8_t* base = (const uint8_t*)ip + (size_t)NONCE_BYTES * i;
      uint64_t start = ((uint64_t)base[8] << 24) | ((uint64_t)base[9] << 16) | ((uint64_t)base[10] << 8) | base[11];
      if (start + chunks - 1 > 0xffffffffull) t->status = ST_COUNTER;  // decided up front: no unit runs
    }
  }
  job->units = malloc((nunits ? nunits : 1) * sizeof(unit_t));
  REQUIRE(job->units != NULL, "too many units");
  job->nunits = nunits;
  uint64_t u = 0;
  for (uint32_t i = 0; i < job->ntasks; i++) {
    task_t* t = &job->tasks[i];
    uint64_t count = t->scheme == SCHEME_PLAIN ? (t->len + SLICE_BYTES - 1) / SLICE_BYTES
                   : t->scheme == SCHEME_MONOLITHIC ? 1
                   : (t->len == 0 ? 1 : (t->len + t->chunk - 1) / t->chunk);
    for (uint64_t c = 0; c < count; c++) job->units[u++] = (unit_t){ i, c };
  }
  job->keys = dup_bytes(kp, klen);
  job->keys_len = klen;
  job->ivs = dup_bytes(ip, ilen);
  job->tags = dup_bytes(tp, tlen);
  job->tags_len = tlen;
  REQUIRE(job->keys && job->ivs && job->tags, "out of memory");
  if (job->op == OP_ENCRYPT) CHECK(napi_create_reference(env, argv[8], 1, &job->tags_ref));
  CHECK(napi_get_value_int32(env, argv[9], &i32));
  job->threads = i32 < 1 ? 1 : i32 > MAX_THREADS ? MAX_THREADS : i32;
  CHECK(napi_get_value_int32(env, argv[10], &i32));
  job->populate = (i32 & 1) != 0;
  job->src_pread = (i32 & 2) != 0;
  napi_value name;
  CHECK(napi_create_promise(env, &job->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "ctensors.aead", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, execute, complete, job, &job->work));
  CHECK(napi_queue_async_work(env, job->work));
  return promise;
fail:
  if (promise) {
    // the promise exists but the work was never queued: reject it instead of leaking it
    napi_value err, msg;
    napi_create_string_utf8(env, "ctensors native: could not start the job", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, job->deferred, err);
  }
  job_free(env, job);
  return promise;
}

// reserve(fd, bytes) → Promise<number>: allocates the first `bytes` bytes of the file (fallocate, on
// a worker thread; tmpfs zeroes the pages), so that a full /dev/shm is reported now, as ENOSPC, and
// never later as a failed write or a SIGBUS in a mapping. Resolves with 0 or the errno (EOPNOTSUPP
// where the file system cannot allocate ahead). A failed fallocate on tmpfs frees what it allocated.
typedef struct {
  int fd;
  off_t len;
  int err;
  napi_deferred deferred;
  napi_async_work work;
} reserve_t;

static void reserve_execute(napi_env env, void* data) {
  (void)env;
  reserve_t* r = (reserve_t*)data;
  while (fallocate(r->fd, 0, 0, r->len) != 0) {
    if (errno == EINTR) continue;
    r->err = errno;
    break;
  }
}

static void reserve_complete(napi_env env, napi_status status, void* data) {
  reserve_t* r = (reserve_t*)data;
  napi_value v;
  napi_create_int32(env, status == napi_ok ? r->err : ECANCELED, &v);
  napi_resolve_deferred(env, r->deferred, v);
  napi_delete_async_work(env, r->work);
  free(r);
}

static napi_value reserve(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name;
  napi_value promise = NULL;
  reserve_t* r = calloc(1, sizeof(reserve_t));
  if (!r) {
    napi_throw_error(env, NULL, "ctensors native: out of memory");
    return NULL;
  }
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  REQUIRE(argc == 2, "reserve() takes 2 arguments");
  CHECK(napi_get_value_int32(env, argv[0], &r->fd));
  double d;
  CHECK(napi_get_value_double(env, argv[1], &d));
  REQUIRE(d > 0 && d <= 9007199254740991.0, "bad size");
  r->len = (off_t)d;
  CHECK(napi_create_promise(env, &r->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "ctensors.reserve", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, reserve_execute, reserve_complete, r, &r->work));
  CHECK(napi_queue_async_work(env, r->work));
  return promise;
fail:
  if (promise) {
    napi_value v;
    napi_create_int32(env, ECANCELED, &v);
    napi_resolve_deferred(env, r->deferred, v);
  }
  if (r->work) napi_delete_async_work(env, r->work);
  free(r);
  return promise;
}

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &v);
  return v;
}

// ---- File helpers (not crypto): the pieces of "an output appears whole or not at all" that Node lacks.
// An unnamed file (open(dir, O_TMPFILE)) has no name until linkFd gives it one, so nothing of a
// half-written output can outlive the process, even under SIGKILL. Node can open with O_TMPFILE
// (numeric flags) but has no linkat; the value of O_TMPFILE differs between architectures, so it
// is exported from here rather than hard-coded in JS.

// linkFd(fd, path): linkat(AT_FDCWD, "/proc/self/fd/<fd>", AT_FDCWD, path, AT_SYMLINK_FOLLOW).
// Gives the open file `fd` the name `path` (which must not exist). Throws an Error with .code = errno name.
static napi_value link_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "linkFd(fd, path)");
    return NULL;
  }
  int32_t fd;
  char path[4096];
  size_t len;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], path, sizeof path, &len) != napi_ok || len >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "linkFd(fd, path): bad arguments");
    return NULL;
  }
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0) {
    int e = errno;
    const char* name = e == EEXIST ? "EEXIST" : e == ENOSPC ? "ENOSPC" : e == EDQUOT ? "EDQUOT" : e == EACCES ? "EACCES"
      : e == EPERM ? "EPERM" : e == ENOENT ? "ENOENT" : e == ENOTDIR ? "ENOTDIR" : e == EROFS ? "EROFS" : e == EXDEV ? "EXDEV"
      : e == ELOOP ? "ELOOP" : e == EMLINK ? "EMLINK" : e == ENAMETOOLONG ? "ENAMETOOLONG" : "EIO";
    napi_value err, code, msg;
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, strerror(e), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &err);
    napi_set_named_property(env, err, "code", code);
    napi_throw(env, err);
    return NULL;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "layout", NULL, layout, NULL, NULL, NULL, napi_default, NULL },
    { "run", NULL, run, NULL, NULL, NULL, napi_default, NULL },
    { "reserve", NULL, reserve, NULL, NULL, NULL, napi_default, NULL },
    { "opensslVersion", NULL, version, NULL, NULL, NULL, napi_default, NULL },
    { "linkFd", NULL, link_fd, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value tmpfile;
  napi_create_int32(env, O_TMPFILE, &tmpfile);
  napi_set_named_property(env, exports, "O_TMPFILE", tmpfile);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

// layout() → the constants of the JS ↔ C contract as this binary was compiled: the enums, the number
// of Float64 fields per task row, the tag and nonce sizes, and the sizes of the C task row types.
// plugin/test/native-layout.test.ts checks them against plugin/src/crypto/engine.ts.
static void set_u64(napi_env env, napi_value obj, const char* name, uint64_t v) {
  napi_value n;
  napi_create_double(env, (double)v, &n);
  napi_set_named_property(env, obj, name, n);
}

static napi_value layout(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, op, scheme, alg, status, dst;
  napi_create_object(env, &out);
  napi_create_object(env, &op);
  set_u64(env, op, "decrypt", OP_DECRYPT);
  set_u64(env, op, "encrypt", OP_ENCRYPT);
  napi_create_object(env, &scheme);
  set_u64(env, scheme, "plain", SCHEME_PLAIN);
  set_u64(env, scheme, "monolithic", SCHEME_MONOLITHIC);
  set_u64(env, scheme, "chunked", SCHEME_CHUNKED);
  napi_create_object(env, &alg);
  set_u64(env, alg, "aes256gcm", ALG_AES256GCM);
  set_u64(env, alg, "aes128gcm", ALG_AES128GCM);
  set_u64(env, alg, "chacha20poly1305", ALG_CHACHA20POLY1305);
  napi_create_object(env, &status);
  set_u64(env, status, "ok", ST_OK);
  set_u64(env, status, "auth", ST_AUTH);
  set_u64(env, status, "io", ST_IO);
  set_u64(env, status, "counter", ST_COUNTER);
  set_u64(env, status, "internal", ST_INTERNAL);
  set_u64(env, status, "nospace", ST_NOSPACE);
  napi_create_object(env, &dst);
  set_u64(env, dst, "buffer", DST_BUFFER);
  set_u64(env, dst, "map", DST_MAP);
  set_u64(env, dst, "pwrite", DST_PWRITE);
  napi_set_named_property(env, out, "op", op);
  napi_set_named_property(env, out, "scheme", scheme);
  napi_set_named_property(env, out, "alg", alg);
  napi_set_named_property(env, out, "status", status);
  napi_set_named_property(env, out, "dst", dst);
  set_u64(env, out, "taskFields", TASK_FIELDS);
  set_u64(env, out, "tagBytes", TAG_BYTES);
  set_u64(env, out, "nonceBytes", NONCE_BYTES);
  napi_value keys;
  napi_create_object(env, &keys);
  set_u64(env, keys, "aes256gcm", (uint64_t)key_len_of(ALG_AES256GCM));
  set_u64(env, keys, "aes128gcm", (uint64_t)key_len_of(ALG_AES128GCM));
  set_u64(env, keys, "chacha20poly1305", (uint64_t)key_len_of(ALG_CHACHA20POLY1305));
  napi_set_named_property(env, out, "keyBytes", keys);
  set_u64(env, out, "chunkBits", sizeof(((task_t*)0)->chunk) * 8);
  set_u64(env, out, "lengthBits", sizeof(((task_t*)0)->len) * 8);
  return out;
}
