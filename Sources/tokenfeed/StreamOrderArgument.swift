import ArgumentParser
import TokenfeedCurriculum

/// `--order quota|nanotron` on `plan` and `dump --offline`.
extension StreamOrder: ExpressibleByArgument {}
