/*
** io.h — files written safely: results, reports, checkpoints.
**
** A write never leaves half a file under the target's name, and never
** replaces what the target is rather than what it holds:
**   - a regular file (or a symbolic link to one: the file it points to) is
**     replaced atomically: the data goes to an unnamed temporary file in the
**     same directory (O_TMPFILE; where the file system lacks it, a new file
**     opened with O_CREAT|O_EXCL|O_NOFOLLOW), is flushed to disk (fsync),
**     then takes the target's name (rename), and the directory is flushed;
**     an existing file's permission bits are kept. A failure removes the
**     temporary file; a process killed mid-write leaves at most an unnamed
**     file the kernel frees (or, on the fallback, a ".NAME.engram-XXXXXX"
**     file beside the target);
**   - anything else that exists (a character device such as /dev/null, a
**     FIFO) is opened and written as it is: it is not replaced by a file.
*/
#ifndef EG_IO_H
#define EG_IO_H

#include <stddef.h>
#include <stdint.h>

#include "eg_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes n bytes of data to path as above. EG_EIO (message naming the path
** and the system's reason) when it cannot. */
EG_API int eg_write_file_atomic(const char *path, const void *data, size_t n);

/* Checks that eg_write_file_atomic(path, ...) can succeed, before hours of
** work: the target, if it exists, is writable, and the directory takes a
** temporary file of `probe` bytes (written and flushed, so a full disk or a
** quota shows now). Leaves nothing behind. EG_EIO naming the path otherwise. */
EG_API int eg_check_writable(const char *path, size_t probe);

/* Makes the directory path and any missing parents (mode 0777 less the
** umask); one that exists already is fine. EG_EIO naming the path when a
** part cannot be made or is not a directory. */
EG_API int eg_mkdir_p(const char *path);

/* A 64-bit checksum of n bytes, continuing from h (start with
** EG_CHECKSUM_INIT): FNV-1a over 8-byte words, then the tail bytes one by
** one. Checkpoints keep one over their tensors and metadata, to reject a
** file whose bytes changed. Not cryptographic. */
#define EG_CHECKSUM_INIT 0xcbf29ce484222325ULL
EG_API uint64_t eg_checksum64(uint64_t h, const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
