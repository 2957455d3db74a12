import Foundation

/// Loads a curriculum file in any of its three forms and validates it completely.
public enum CurriculumLoader {
    /// Loads and validates the curriculum at `path`.
    ///
    /// The form is detected from the top-level keys: `stages` (tokenfeed's own format),
    /// `data_stages` (a nanotron config) or `datasets` (a dataset list, one open-ended stage).
    ///
    /// - Parameters:
    ///   - path: the curriculum file.
    ///   - dataRoot: the folder dataset folders are relative to. When given, every dataset
    ///     folder must exist and hold at least one file. Without it, relative folders of the
    ///     tokenfeed format resolve against the curriculum file's folder and nothing on disk is checked.
    ///   - requireFolders: false to resolve folders against `dataRoot` without requiring them to
    ///     exist (a tool that is about to create them, such as `tokenfeed demo`).
    /// - Throws: ``CurriculumErrors`` with every problem of the file (and of the dataset list
    ///   files it names): unreadable file, YAML syntax, unknown keys, missing, non-numeric or
    ///   negative weights, weights summing to zero, duplicate datasets in a stage, stages that
    ///   overlap, leave gaps or hold no sequence, missing or empty dataset folders.
    public static func load(path: String, dataRoot: String?, requireFolders: Bool = true) throws(CurriculumErrors) -> Curriculum {
        var diagnostics = Diagnostics()
        let curriculum = load(path: path, dataRoot: dataRoot, requireFolders: requireFolders, &diagnostics)
        guard diagnostics.isEmpty, let curriculum else { throw CurriculumErrors(diagnostics.errors) }
        return curriculum
    }

    /// Loads and validates a curriculum given as text (for tests and tools); `path` names it in
    /// diagnostics and anchors relative paths.
    ///
    /// - Throws: ``CurriculumErrors`` as ``load(path:dataRoot:)`` does.
    public static func load(text: String, path: String, dataRoot: String?) throws(CurriculumErrors) -> Curriculum {
        var diagnostics = Diagnostics()
        let curriculum = load(text: text, path: path, dataRoot: dataRoot, &diagnostics)
        guard diagnostics.isEmpty, let curriculum else { throw CurriculumErrors(diagnostics.errors) }
        return curriculum
    }

    static func load(path: String, dataRoot: String?, requireFolders: Bool = true, _ diagnostics: inout Diagnostics) -> Curriculum? {
        guard let text = readText(path, at: SourceLocation(file: path, line: 1, column: 1), &diagnostics) else { return nil }
        return load(text: text, path: path, dataRoot: dataRoot, requireFolders: requireFolders, &diagnostics)
    }

    static func load(text: String, path: String, dataRoot: String?, requireFolders: Bool = true, _ diagnostics: inout Diagnostics) -> Curriculum? {
        let start = SourceLocation(file: path, line: 1, column: 1)
        let root: YAMLNode?
        do throws(CurriculumErrors) {
            root = try YAMLParser.parse(text, file: path)
        } catch {
            for e in error.diagnostics { diagnostics.error(e.location, e.message) }
            return nil
        }
        guard let root else {
            diagnostics.error(start, "the file is empty; a curriculum needs 'stages' (tokenfeed), 'data_stages' (nanotron) or 'datasets' (a dataset list)")
            return nil
        }
        guard let map = diagnostics.mapping(root, "a curriculum") else { return nil }
        let directory = parentDirectory(path)
        let raw: RawCurriculum
        if map.value("stages") != nil {
            raw = NativeFormat.read(map, &diagnostics) { listPath, location, diagnostics in
                let resolved = listPath.hasPrefix("/") ? listPath : directory + "/" + listPath
                guard let text = readText(resolved, at: location, &diagnostics) else { return [] }
                do throws(CurriculumErrors) {
                    guard let listRoot = try YAMLParser.parse(text, file: resolved) else {
                        diagnostics.error(SourceLocation(file: resolved, line: 1, column: 1), "the dataset list is empty; write 'datasets:' with at least one entry")
                        return []
                    }
                    guard let listMap = diagnostics.mapping(listRoot, "a dataset list") else { return [] }
                    return DatasetListFormat.entries(of: listMap, &diagnostics)
                } catch {
                    for e in error.diagnostics { diagnostics.error(e.location, e.message) }
                    return []
                }
            }
        } else if map.value("data_stages") != nil {
            raw = NanotronFormat.read(map, dataRoot: dataRoot, &diagnostics)
        } else if map.value("datasets") != nil {
            raw = DatasetListFormat.read(map, file: path, &diagnostics)
        } else {
            diagnostics.error(root.location, "not a curriculum: expected a top-level 'stages' (tokenfeed format), 'data_stages' (nanotron config) or 'datasets' (dataset list)")
            return nil
        }
        var curriculum = CurriculumAssembler(raw: raw, path: path, directory: directory, dataRoot: dataRoot,
                                             requireFolders: requireFolders).assemble(&diagnostics)
        curriculum?.dataRoot = dataRoot
        return curriculum
    }

    /// The contents of a text file, or nil after reporting why it cannot be read.
    static func readText(_ path: String, at location: SourceLocation, _ diagnostics: inout Diagnostics) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            diagnostics.error(location, exists ? "cannot read '\(path)'; check its permissions" : "'\(path)' does not exist; check the path")
            return nil
        }
        guard let text = String(data: data, encoding: .utf8) else {
            diagnostics.error(location, "'\(path)' is not UTF-8 text")
            return nil
        }
        return text
    }

    static func parentDirectory(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
