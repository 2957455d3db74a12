import ArgumentParser
import Foundation
import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedServer

/// `tokenfeed cursor …`: questions about resume cursors.
struct CursorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cursor",
        abstract: "Inspect resume cursors and check them against a curriculum.",
        subcommands: [CursorCheck.self, CursorShow.self])
}

/// Reads a cursor given as its `tfc1-…` text or as a file holding it.
private func readCursor(_ argument: String) throws -> Cursor {
    var text = argument
    if !argument.hasPrefix(Cursor.textPrefix) {
        guard let data = FileManager.default.contents(atPath: argument) else {
            throw ValidationError("--cursor: '\(argument)' is neither a cursor (tfc1-…) nor a readable file")
        }
        text = String(decoding: data, as: UTF8.self)
    }
    do { return try Cursor(text: text) } catch {
        throw ValidationError("--cursor \(argument): \(error)")
    }
}

/// `tokenfeed cursor show C`: the cursor's fields.
struct CursorShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a cursor's fields.")

    @Argument(help: "The cursor: its tfc1-… text, or a file holding it.")
    var cursor: String

    func run() throws {
        let c = try readCursor(cursor)
        print("fingerprint 0x\(String(c.fingerprint, radix: 16)) · next step \(c.nextStep) of world size \(c.worldSize) × batch size "
              + "\(c.batchSize) · next sequence \(c.nextSequence) · quarantine digest 0x\(String(c.quarantineDigest, radix: 16))")
    }
}

/// `tokenfeed cursor check --cursor C --curriculum NEW [--data-root D] [--previous OLD]`.
struct CursorCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Say whether a cursor resumes exactly under a curriculum (docs/CURRICULUM.md, \"Stage files one after another\").",
        discussion: """
            A cursor resumes exactly when every sequence before it is the same under the new curriculum: \
            the same curriculum, or one that keeps every stage the cursor was made under (same sequence \
            length, seed, packing, stage starts, mixtures and shards) and appends stages after the cursor — \
            as SmolLM3 went from stage1_8T.yaml to stage2_8T_9T.yaml to stage3_9T_11T.yaml. \
            Prints "compatible …" (exit 0) or "incompatible: <reason>" (exit 1). With --previous, the \
            curriculum the cursor was made under, an incompatibility names the first difference \
            (stage, dataset, shard or field).
            """)

    @Option(help: "The cursor: its tfc1-… text, or a file holding it.")
    var cursor: String

    @Option(help: "The curriculum to resume under.")
    var curriculum: String

    @Option(name: .customLong("data-root"), help: "Folder the dataset folders are in (the daemon's data root).")
    var dataRoot: String

    @Option(help: "The curriculum the cursor was made under, to name the first difference.")
    var previous: String?

    @Option(name: .customLong("previous-data-root"), help: "The data root of --previous (default: --data-root).")
    var previousDataRoot: String?

    @Option(help: "The order the daemon serves: quota (the default) or nanotron; part of the stream's fingerprint.")
    var order: StreamOrder = .quota

    @Option(name: .customLong("previous-order"), help: "The order of --previous (default: --order).")
    var previousOrder: StreamOrder?

    @Option(help: ArgumentHelp("With --order nanotron: keep the blend counts in this folder, so that opening the stream is cheap after the first time (as tokenfeed plan/dump --cache-dir).",
                               valueName: "dir"))
    var cacheDir: String?

    func run() throws {
        let c = try readCursor(cursor)
        if c.quarantineDigest != 0 {
            print("incompatible: the cursor was made by a daemon that had quarantined shards (digest 0x\(String(c.quarantineDigest, radix: 16))); "
                  + "an offline check sees every shard — resume it on a daemon with the same quarantine")
            throw ExitCode(1)
        }
        let new = try open(curriculum, dataRoot: dataRoot, order: order)
        let old = try previous.map { try open($0, dataRoot: previousDataRoot ?? dataRoot, order: previousOrder ?? order) }
        let served = StreamDescription(stream: new)
        let verdict = CursorCompatibility.check(fingerprint: c.fingerprint, nextSequence: c.nextSequence, served: served,
                                                plan: new.plan, previous: old.map { StreamDescription(stream: $0) })
        let total = new.plan.totalSequences
        switch verdict {
        case .same:
            print("compatible: the cursor was made for this very stream (fingerprint 0x\(String(c.fingerprint, radix: 16))); "
                  + "it resumes at sequence \(c.nextSequence) of \(total)")
        case .prefix(let k, let boundary):
            print("compatible up to sequence \(boundary): the cursor's stream is this curriculum's first \(k) stage\(k == 1 ? "" : "s"), "
                  + "unchanged; the cursor at sequence \(c.nextSequence) resumes exactly (fingerprint 0x\(String(c.fingerprint, radix: 16)) "
                  + "→ 0x\(String(served.fingerprint, radix: 16)))")
        case .incompatible(let reason):
            print("incompatible: \(reason)")
            throw ExitCode(1)
        }
        if c.nextSequence > total {
            print("but the cursor at sequence \(c.nextSequence) is past this curriculum's end (\(total) sequences)")
            throw ExitCode(1)
        }
    }

    private func open(_ path: String, dataRoot: String, order: StreamOrder) throws -> GlobalStream {
        var loaded: Curriculum
        do {
            loaded = try CurriculumLoader.load(path: path, dataRoot: dataRoot)
            loaded.order = order
        } catch {
            for diagnostic in error.diagnostics { printError(diagnostic.description) }
            throw ExitCode(1)
        }
        let blendCache = cacheDir.map { NanotronBlendStore(directory: $0, report: { printError("tokenfeed cursor: \($0)") }) }
        do { return try GlobalStream(curriculum: loaded, nanotronBlendCache: blendCache) } catch {
            printError("\(path): \(error)")
            throw ExitCode(1)
        }
    }
}
