// The Elasticsearch entitlement agent (not published on Maven Central): the server attaches it to itself
// and it hands the Instrumentation to the initialization class named in the agent arguments.
import java.lang.instrument.Instrumentation;

public class EntitlementAgent {
    public static void agentmain(String agentArgs, Instrumentation inst) throws Exception {
        Class<?> init = Class.forName(agentArgs);
        init.getMethod("initialize", Instrumentation.class).invoke(null, inst);
    }
}
