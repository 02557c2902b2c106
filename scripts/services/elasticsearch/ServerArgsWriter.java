// Plays the part of Elasticsearch's own launcher (server-cli, not on Maven Central): the 8.x server reads its
// arguments as a serialized ServerArgs from stdin, and treats stdin closing as "shut down". Run with the
// server jars on the classpath; writes the arguments, then keeps stdout open until killed.
//   java -cp 'lib/*' ServerArgsWriter.java CONFIG_DIR LOGS_DIR PID_FILE key=value...
import java.io.BufferedOutputStream;
import java.nio.file.Path;
import org.elasticsearch.bootstrap.ServerArgs;
import org.elasticsearch.common.io.stream.OutputStreamStreamOutput;
import org.elasticsearch.common.settings.KeyStoreWrapper;
import org.elasticsearch.common.settings.Settings;

public class ServerArgsWriter {
    public static void main(String[] args) throws Exception {
        Settings.Builder settings = Settings.builder();
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            settings.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        ServerArgs serverArgs = new ServerArgs(false, false, Path.of(args[2]), KeyStoreWrapper.create(), settings.build(),
            Path.of(args[0]), Path.of(args[1]));
        BufferedOutputStream raw = new BufferedOutputStream(System.out);
        OutputStreamStreamOutput out = new OutputStreamStreamOutput(raw);
        serverArgs.writeTo(out);
        out.flush();
        raw.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
