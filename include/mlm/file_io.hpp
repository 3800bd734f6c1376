// mlm/file_io.hpp — whole-file reads, and writes that replace a file as one change.
//
// write_file_atomic writes under a temporary name in the same directory, fsyncs, renames it over
// the target and fsyncs the directory: a crash at any moment leaves the old file or the new one,
// whole. Every failure is a CheckpointError naming the file and the problem, and leaves any file
// already there unchanged.
//
//   mlm::write_file_atomic("notes.txt", "first\n");
//   mlm::write_file_atomic("notes.txt", "second\n");        // notes.txt is "first\n" or "second\n", never a mix
//   std::string text = mlm::read_file("notes.txt");         // "second\n"
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace mlm {

// A checkpoint file or directory that cannot be read or written as asked. The message names the
// file, the tensor (when there is one) and the problem.
class CheckpointError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename, fsync the
// directory). On failure the old file is untouched and CheckpointError is thrown.
void write_file_atomic(const std::string& path, const std::string& bytes);
// The whole file; CheckpointError if it cannot be read.
std::string read_file(const std::string& path);

namespace detail {
// A file written under a temporary name and renamed over the target by commit(). Until then the
// target is untouched; if commit() is not reached the temporary file is removed.
class AtomicFile {
public:
    explicit AtomicFile(std::string path);
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile();
    void write(const void* data, std::size_t n);
    void commit();

private:
    [[noreturn]] void fail(const std::string& what, int err) const;
    std::string path_;
    std::string tmp_;
    int fd_ = -1;
    bool created_ = false;
    bool committed_ = false;
};
}  // namespace detail

}  // namespace mlm
