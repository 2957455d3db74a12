#if canImport(Glibc)
/// glibc's `malloc_trim` (declared in `<malloc.h>`, which the Glibc module does not export): returns
/// the free memory at the top of every arena to the system. Returns 1 if memory was released.
@_silgen_name("malloc_trim")
func mallocTrim(_ pad: Int) -> Int32
#endif
