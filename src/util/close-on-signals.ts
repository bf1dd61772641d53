/**
 * Run `close` on the first SIGINT or SIGTERM, then let the signal take its default course (handlers removed, signal
 * re-raised, also when `close` fails). Returns the uninstaller.
 */
export function closeOnSignals (close: () => Promise<unknown>): () => void {
  const handler = (signal: NodeJS.Signals): void => {
    uninstall()
    void close().catch(() => {}).finally(() => { process.kill(process.pid, signal) })
  }
  const onInt = (): void => { handler('SIGINT') }
  const onTerm = (): void => { handler('SIGTERM') }
  function uninstall (): void { process.off('SIGINT', onInt); process.off('SIGTERM', onTerm) }
  process.once('SIGINT', onInt)
  process.once('SIGTERM', onTerm)
  return uninstall
}
